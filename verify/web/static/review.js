// The review pages' players: media links renewed when they expire, the item page's frame step,
// speed, wall clock and contact sheet, the case page's viewer (items opened from the time axis)
// and its synchronized playback of several recordings on one clock. Plain JavaScript, no build.
(function () {
  "use strict";
  var review = document.getElementById("review");
  var itemPlayer = document.getElementById("player");
  var zone = (review && review.dataset.zone) || (itemPlayer && itemPlayer.dataset.zone) || undefined;
  var clockFormat;
  try {
    clockFormat = new Intl.DateTimeFormat("zh-CN", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false
    });
  } catch (e) {
    clockFormat = new Intl.DateTimeFormat("zh-CN", { hour12: false });
  }
  function wallClock(ms) {
    var d = new Date(ms);
    var tenths = Math.floor((ms % 1000) / 100);
    return clockFormat.format(d).replace(/\//g, "-") + "." + tenths;
  }

  function linkFor(item, purpose) {
    return fetch("/items/" + encodeURIComponent(item) + "/link?for=" + purpose, {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (r) {
      if (!r.ok) { throw new Error("link refused: " + r.status); }
      return r.json();
    });
  }

  // When a media link has expired (or a fetch failed), the element fires "error": ask for a
  // fresh link and carry on where it stopped, playing if it was playing. A review of any
  // length renews as often as its links expire; three failures in a minute with no renewal
  // that played in between (grant revoked, session ended) show the error instead.
  function renewable(el, itemOf, onRenewed) {
    var position = 0, playing = false, tries = [];
    el.addEventListener("timeupdate", function () {
      if (!el.seeking) { position = el.currentTime; }
    });
    el.addEventListener("seeking", function () { position = el.currentTime; });
    // Whether the auditor wants it playing: a failed fetch pauses the element too.
    el.addEventListener("play", function () { playing = true; });
    el.addEventListener("pause", function () { if (!el.error) { playing = false; } });
    el.addEventListener("error", function () {
      var item = itemOf();
      if (!item || !el.getAttribute("src")) return;
      var now = Date.now();
      tries = tries.filter(function (t) { return now - t < 60000; });
      if (tries.length >= 3) { el.dataset.renewal = "failed"; return; }
      tries.push(now);
      var at = Math.max(position, 0), resume = playing || !el.paused || el.dataset.wantPlay === "1";
      linkFor(item, "renew").then(function (link) {
        if (!link.url) return;
        el.addEventListener("loadedmetadata", function once() {
          el.removeEventListener("loadedmetadata", once);
          el.currentTime = at;
          tries = [];  // renewed and playing again: only failures in a row count
          if (resume) { el.play().catch(function () {}); }
          el.dataset.renewals = String(Number(el.dataset.renewals || 0) + 1);
          if (onRenewed) { onRenewed(link); }
        });
        el.src = link.url;
        el.load();
      }).catch(function () { el.dataset.renewal = "failed"; });
    });
  }

  // --- the item page ------------------------------------------------------------------
  var player = document.getElementById("player");
  if (player) {
    renewable(player, function () { return player.dataset.item; });
    var startMs = Number(player.dataset.startMs || NaN);
    var fps = Number(player.dataset.fps || 25) || 25;
    var clock = document.getElementById("wall-clock");
    var showClock = function () {
      if (clock && !isNaN(startMs)) { clock.textContent = wallClock(startMs + player.currentTime * 1000); }
    };
    ["timeupdate", "seeked", "loadedmetadata"].forEach(function (e) { player.addEventListener(e, showClock); });
    if (player.readyState >= 1) { showClock(); }  // the metadata came before this script ran
    var step = function (frames) {
      return function () {
        player.pause();
        player.currentTime = Math.max(0, Math.min(player.duration || 1e9, player.currentTime + frames / fps));
      };
    };
    var back = document.getElementById("frame-back"), forward = document.getElementById("frame-forward");
    if (back) { back.addEventListener("click", step(-1)); }
    if (forward) { forward.addEventListener("click", step(1)); }
    var speed = document.getElementById("speed");
    if (speed) {
      speed.addEventListener("change", function () { player.playbackRate = Number(speed.value) || 1; });
    }
    var sheet = document.getElementById("sheet");
    if (sheet) {
      // The sheet is up to ten keyframes, each the one at or before the middle of its tenth
      // of the recording, in rows of five; the tile clicked gives its place, and so the time
      // its keyframe was sought at (at most one keyframe interval after the frame shown).
      sheet.addEventListener("click", function (ev) {
        var rect = sheet.getBoundingClientRect();
        var aspect = (Number(sheet.dataset.width) || 16) / (Number(sheet.dataset.height) || 9);
        var w = sheet.naturalWidth, h = sheet.naturalHeight;
        // Rows of five tiles when the picture's height fits whole rows of that width;
        // otherwise a single row of fewer tiles.
        var cols = 5, rows = Math.max(1, Math.round(h / (w / 5 / aspect)));
        if (Math.abs(rows * (w / 5 / aspect) - h) > 0.1 * h) {
          cols = Math.max(1, Math.min(5, Math.round(w / (h * aspect))));
          rows = 1;
        }
        var col = Math.min(cols - 1, Math.floor((ev.clientX - rect.left) / rect.width * cols));
        var row = Math.min(rows - 1, Math.floor((ev.clientY - rect.top) / rect.height * rows));
        var tiles = cols * rows, duration = Number(sheet.dataset.duration) || player.duration || 0;
        player.currentTime = Math.min(duration, (row * cols + col + 0.5) * duration / tiles);
        sheet.dataset.jumped = String(player.currentTime);
      });
    }
  }

  // --- the case page: one item in the viewer, documents beside ------------------------
  var viewer = document.getElementById("viewer");
  var panel = document.getElementById("doc-panel");
  var current = { item: null, startMs: NaN };
  var players = {
    video: document.getElementById("viewer-video"),
    audio: document.getElementById("viewer-audio")
  };
  var viewerClock = document.getElementById("viewer-clock");
  Object.keys(players).forEach(function (kind) {
    var el = players[kind];
    if (!el) return;
    renewable(el, function () { return el.dataset.item; });
    el.addEventListener("timeupdate", function () {
      if (viewerClock && !isNaN(current.startMs)) {
        viewerClock.textContent = wallClock(current.startMs + el.currentTime * 1000);
      }
    });
  });

  function showDocument(link) {
    if (!panel) return;
    panel.hidden = false;
    document.getElementById("doc-title").textContent = link.item + (link.doc_type ? " · " + link.doc_type : "");
    var pages = document.getElementById("doc-pages");
    pages.textContent = "";
    var urls = link.pages && link.pages.length ? link.pages : (link.url && /^image\//.test(link.content_type) ? [link.url] : []);
    urls.forEach(function (url, n) {
      var img = document.createElement("img");
      img.className = "doc-page";
      img.alt = link.item + " " + (n + 1);
      img.src = url;
      pages.appendChild(img);
    });
    if (!urls.length && link.url) {
      var a = document.createElement("a");
      a.href = "/items/" + encodeURIComponent(link.item);
      a.textContent = link.item;
      pages.appendChild(a);
    }
  }

  function openItem(item) {
    linkFor(item, "viewer").then(function (link) {
      if (link.kind === "document") { showDocument(link); return; }
      if (!viewer) return;
      viewer.hidden = false;
      document.getElementById("viewer-title").textContent = link.item;
      var info = document.getElementById("viewer-info");
      var said = link.source ? (viewer.dataset["label" + link.source.charAt(0).toUpperCase() + link.source.slice(1)] || link.source) : "";
      info.textContent = (said ? said + " · SHA-256 " : "") + (link.sha256 || "") +
        (link.clock_suspect ? " · ⚠ " + link.clock_suspect : "");
      Object.keys(players).forEach(function (kind) {
        var el = players[kind];
        if (!el) return;
        if (!el.paused) { el.pause(); }
        el.dispatchEvent(new Event("evidence:switch"));
        el.hidden = true;
      });
      var photo = document.getElementById("viewer-photo");
      photo.hidden = true;
      current = { item: link.item, startMs: link.start_ms === null ? NaN : link.start_ms };
      if (link.kind === "photo") { photo.src = link.url; photo.hidden = false; return; }
      var el = players[link.kind];
      if (!el || !link.url) return;
      el.dataset.item = link.item;
      el.dataset.playUrl = "/items/" + encodeURIComponent(link.item) + "/play";
      el.src = link.url;
      el.hidden = false;
      viewer.scrollIntoView({ block: "nearest" });
    });
  }

  document.addEventListener("click", function (ev) {
    var a = ev.target.closest ? ev.target.closest("a.axis-item, a.open-item") : null;
    if (!a || !review || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    ev.preventDefault();
    openItem(a.dataset.item);
  });

  // --- the case page: several recordings on one clock ---------------------------------
  var sync = document.getElementById("sync");
  if (!sync) return;
  var seek = document.getElementById("sync-seek");
  var button = document.getElementById("sync-play");
  var syncClock = document.getElementById("sync-clock");
  var fromMs = Number(seek.dataset.fromMs);
  var streams = Array.prototype.map.call(sync.querySelectorAll("figure.stream"), function (fig) {
    var el = fig.querySelector(".sync-player");
    var s = { fig: fig, el: el, startMs: Number(fig.dataset.startMs), duration: Number(fig.dataset.duration) || 0 };
    renewable(el, function () { return fig.dataset.item; }, function () { s.renewed = true; });
    return s;
  });
  // The clock: "at" (ms since the epoch) when it was last set, and the moment it was set.
  var state = { at: fromMs, since: performance.now(), playing: false, holding: 0, stalled: false };
  function now() {
    return state.playing && !state.holding ? state.at + (performance.now() - state.since) : state.at;
  }
  function setClock(at) { state.at = at; state.since = performance.now(); }
  function offsetOf(s, at) { return (at - s.startMs) / 1000; }
  function inside(s, at) { var o = offsetOf(s, at); return o >= 0 && o < s.duration; }

  // Every stream to the clock's time; playing the ones inside their span. After a seek the
  // clock holds until every stream inside has found its place, so none starts behind.
  function place(at, hard) {
    var waiting = [];
    streams.forEach(function (s) {
      var state_ = s.fig.querySelector(".stream-state");
      if (!inside(s, at)) {
        if (!s.el.paused) { s.el.pause(); }
        s.fig.classList.add("idle");
        state_.textContent = "(" + (at < s.startMs ? sync.dataset.labelNotYet : sync.dataset.labelEnded) + ")";
        return;
      }
      s.fig.classList.remove("idle");
      state_.textContent = "";
      var want = offsetOf(s, at);
      if (hard || Math.abs(s.el.currentTime - want) > 0.5) {
        s.el.currentTime = want;
        waiting.push(s);
      }
    });
    return waiting;
  }
  function hold(waiting) {
    if (!waiting.length) return Promise.resolve();
    state.holding += 1;
    var at = now();
    return Promise.all(waiting.map(function (s) {
      return new Promise(function (resolve) {
        var done = function () { s.el.removeEventListener("seeked", done); resolve(); };
        s.el.addEventListener("seeked", done);
        setTimeout(done, 3000);
      });
    })).then(function () { setClock(at); state.holding -= 1; });
  }
  function tick() {
    var at = now();
    if (syncClock) { syncClock.textContent = wallClock(at); }
    if (!seek.matches(":active")) { seek.value = String((at - fromMs) / 1000); }
    sync.dataset.clockMs = String(Math.round(at));
    if (!state.playing || (state.holding && !state.stalled)) return;
    // A stream that cannot go on (buffering, or starved of CPU) holds the clock and the others,
    // so none runs ahead of it; all go on together when it can.
    var stalled = streams.some(function (s) {
      return inside(s, at) && !s.el.seeking && s.el.readyState < 3;
    });
    if (stalled && !state.stalled) {
      setClock(at);
      state.stalled = true;
      state.holding += 1;
      streams.forEach(function (s) { if (!s.el.paused) { s.el.pause(); } });
      return;
    }
    if (stalled) return;
    if (state.stalled) {
      state.stalled = false;
      state.holding -= 1;
      setClock(state.at);
    }
    hold(place(at, false));
    streams.forEach(function (s) {
      if (!inside(s, at)) return;
      if (s.el.paused && !s.el.seeking) { s.el.dataset.wantPlay = "1"; s.el.play().catch(function () {}); }
      // Small drift is taken up by the playback rate, not by seeking (a seek stalls).
      var drift = s.el.currentTime - offsetOf(s, at);
      s.el.playbackRate = Math.abs(drift) < 0.04 ? 1 : (drift > 0 ? 0.9 : 1.1);
    });
    if (streams.every(function (s) { return at >= s.startMs + s.duration * 1000; })) { pause(); }
  }
  function play() {
    state.playing = true;
    setClock(state.at);
    button.classList.add("on");
    hold(place(state.at, true));
  }
  function pause() {
    setClock(now());
    state.playing = false;
    button.classList.remove("on");
    streams.forEach(function (s) { s.el.dataset.wantPlay = ""; if (!s.el.paused) { s.el.pause(); } });
  }
  button.addEventListener("click", function () { if (state.playing) { pause(); } else { play(); } });
  seek.addEventListener("input", function () {
    setClock(fromMs + Number(seek.value) * 1000);
    streams.forEach(function (s) { if (!s.el.paused) { s.el.pause(); } });
    hold(place(state.at, true));
  });
  window.evidenceSync = {
    seek: function (at) { setClock(at); streams.forEach(function (s) { if (!s.el.paused) { s.el.pause(); } }); return hold(place(at, true)); },
    play: play, pause: pause, now: now
  };
  place(state.at, true);
  setInterval(tick, 100);
})();
