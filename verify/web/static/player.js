// Reports each play to the server: where it started and how long it was watched.
(function () {
  var player = document.getElementById("player");
  if (!player) return;
  var start = null, watched = 0, last = null;
  function tick() {
    if (last !== null) { watched += Math.max(0, player.currentTime - last); }
    last = player.paused ? null : player.currentTime;
  }
  function report() {
    tick();
    if (start === null || watched < 0.05) return;
    var body = JSON.stringify({ start: start, watched: watched });
    start = null; watched = 0;
    fetch(player.dataset.playUrl, {
      method: "POST", body: body, keepalive: true, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": player.dataset.csrf }
    });
  }
  player.addEventListener("play", function () { if (start === null) { start = player.currentTime; } last = player.currentTime; });
  player.addEventListener("timeupdate", function () { if (!player.paused) { tick(); } });
  player.addEventListener("seeking", function () { tick(); last = null; });
  player.addEventListener("seeked", function () { last = player.paused ? null : player.currentTime; });
  player.addEventListener("pause", report);
  player.addEventListener("ended", report);
  window.addEventListener("pagehide", report);
})();
