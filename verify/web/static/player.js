// Reports each play to the server: where it started and how long it was watched. Every
// player of a page is tracked (the item page's, the case page's viewer and its synchronized
// streams); the play URL is read when the play is reported, so a viewer that opens another
// item reports each play to its own item.
(function () {
  function track(player) {
    if (player.dataset.tracked) return;
    player.dataset.tracked = "1";
    var start = null, watched = 0, last = null, url = null;
    function tick() {
      if (last !== null) { watched += Math.max(0, Math.min(player.currentTime - last, 5)); }
      last = player.paused ? null : player.currentTime;
    }
    function report() {
      tick();
      if (start === null || watched < 0.05 || !url) { start = null; watched = 0; return; }
      var body = JSON.stringify({ start: start, watched: watched });
      start = null; watched = 0;
      fetch(url, {
        method: "POST", body: body, keepalive: true, credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": player.dataset.csrf }
      });
    }
    player.addEventListener("play", function () {
      url = player.dataset.playUrl;
      if (start === null) { start = player.currentTime; }
      last = player.currentTime;
    });
    player.addEventListener("timeupdate", function () { if (!player.paused) { tick(); } });
    player.addEventListener("seeking", function () { tick(); last = null; });
    player.addEventListener("seeked", function () { last = player.paused ? null : player.currentTime; });
    player.addEventListener("pause", report);
    player.addEventListener("ended", report);
    player.addEventListener("evidence:switch", report);
    window.addEventListener("pagehide", report);
  }
  window.evidenceTrackPlays = track;
  var players = document.querySelectorAll("#player, .review-player, .sync-player");
  for (var i = 0; i < players.length; i++) { track(players[i]); }
})();
