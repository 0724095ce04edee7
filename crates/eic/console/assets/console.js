/* eic console: terminal sessions, recording playback and small page helpers.
 * Plain script (no modules, no eval) so it runs under the console's strict CSP.
 * Needs the globals Terminal (xterm.js) and FitAddon.FitAddon (addon-fit). */
(function () {
  "use strict";

  var FONT = 'ui-monospace, "SF Mono", SFMono-Regular, "Cascadia Mono", "JetBrains Mono", ' +
    'Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace';

  // A GitHub-dark-like palette: readable ANSI colours on a near-black background.
  var THEME = {
    background: "#0d1117", foreground: "#e6edf3",
    cursor: "#58a6ff", cursorAccent: "#0d1117",
    selectionBackground: "rgba(56, 139, 253, 0.40)",
    black: "#484f58", red: "#ff7b72", green: "#3fb950", yellow: "#d29922",
    blue: "#58a6ff", magenta: "#bc8cff", cyan: "#39c5cf", white: "#b1bac4",
    brightBlack: "#6e7681", brightRed: "#ffa198", brightGreen: "#56d364", brightYellow: "#e3b341",
    brightBlue: "#79c0ff", brightMagenta: "#d2a8ff", brightCyan: "#56d4dd", brightWhite: "#ffffff"
  };

  var PAUSE_AT = 512 * 1024;   // output bytes queued in xterm before we ask the server to pause
  var RESUME_AT = 64 * 1024;   // ... and the level at which we let it go on
  var SEND_HIGH = 1024 * 1024; // ws.bufferedAmount above which input waits locally
  var IDLE_CAP = 2;            // seconds: longest pause replayed from a recording

  function byId(id) { return document.getElementById(id); }

  function newTerminal(extra) {
    var opts = { fontFamily: FONT, fontSize: 14, lineHeight: 1.15, scrollback: 5000, theme: THEME };
    for (var k in extra) opts[k] = extra[k];
    return new Terminal(opts);
  }

  // xterm 5's DOM renderer styles itself (theme colours, font, cell sizes) through two <style>
  // elements, which CSP style-src 'self' blocks. Keep them out of the document and mirror their
  // text into constructed stylesheets, which CSP does not govern.
  function openTerminal(term, el) {
    if (!("adoptedStyleSheets" in document) || !window.CSSStyleSheet ||
        !CSSStyleSheet.prototype.replaceSync) {
      term.open(el);
      return;
    }
    var captured = [];
    var append = Node.prototype.appendChild;
    Node.prototype.appendChild = function (child) {
      if (child instanceof HTMLStyleElement) { captured.push(child); return child; }
      return append.call(this, child);
    };
    try { term.open(el); } finally { Node.prototype.appendChild = append; }
    captured.forEach(function (styleEl) {
      var sheet = new CSSStyleSheet();
      function sync() { sheet.replaceSync(styleEl.textContent || ""); }
      sync();
      document.adoptedStyleSheets = document.adoptedStyleSheets.concat([sheet]);
      // xterm rewrites the element's text when the theme, font or size changes.
      new MutationObserver(sync).observe(styleEl, { childList: true, characterData: true, subtree: true });
    });
  }

  function expose(terminal, socket) {
    window.eicConsole = Object.freeze({ terminal: terminal, socket: socket });
  }

  // ---------------------------------------------------------------- terminal

  function socketUrl(path, csrf) {
    var url = new URL(path, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("csrf", csrf);
    return url.href;
  }

  function terminalPage(el) {
    var statusEl = byId("status");
    var banner = byId("banner");
    var disconnectBtn = byId("disconnect");
    var baseTitle = el.getAttribute("data-title") || document.title;

    var term = newTerminal({ cursorBlink: true });
    var fit = new FitAddon.FitAddon();
    term.loadAddon(fit);
    openTerminal(term, el);
    refit();
    term.focus();

    var ws = new WebSocket(socketUrl(el.getAttribute("data-socket"), el.getAttribute("data-csrf") || ""));
    ws.binaryType = "arraybuffer";
    expose(term, ws);

    var encoder = new TextEncoder();
    var stopped = false;     // no more input/control frames: exit, error, close or our disconnect
    var pending = 0;         // output bytes given to xterm and not yet parsed
    var paused = false;      // we sent "pause" and not yet "resume"
    var queue = [];          // input waiting for the socket to drain (or to open)
    var flushTimer = null;
    var lastCols = 0, lastRows = 0, fitTimer = null;

    setStatus("connecting");

    function setStatus(state) {
      if (!statusEl) return;
      statusEl.className = "status status-" + state;
      statusEl.textContent = state;
    }

    function showBanner(text, kind) {
      if (!banner) return;
      banner.className = "banner banner-" + kind;
      banner.textContent = text;
      banner.hidden = false;
    }

    // The session is over for us; keep the screen (and selection) usable to read it.
    function finish(state, text, kind) {
      if (stopped) return;
      stopped = true;
      queue = [];
      clearTimeout(flushTimer);
      setStatus(state);
      showBanner(text, kind);
      term.options.disableStdin = true;
      term.options.cursorBlink = false;
      if (disconnectBtn) disconnectBtn.disabled = true;
    }

    function sendControl(msg) {
      if (stopped || ws.readyState !== WebSocket.OPEN) return false;
      ws.send(JSON.stringify(msg));
      return true;
    }

    // Input keeps its order: once anything is queued, later input queues behind it.
    function sendInput(bytes) {
      if (stopped || bytes.length === 0) return;
      if (ws.readyState === WebSocket.CONNECTING || queue.length || ws.bufferedAmount > SEND_HIGH) {
        queue.push(bytes);
        scheduleFlush();
        return;
      }
      if (ws.readyState === WebSocket.OPEN) ws.send(bytes);
    }

    function scheduleFlush() {
      // Only poll while the socket is open; onopen flushes what was typed while connecting.
      if (flushTimer === null && ws.readyState === WebSocket.OPEN) flushTimer = setTimeout(flush, 25);
    }

    function flush() {
      flushTimer = null;
      if (stopped || ws.readyState !== WebSocket.OPEN) return;
      while (queue.length && ws.bufferedAmount <= SEND_HIGH) ws.send(queue.shift());
      if (queue.length) scheduleFlush();
    }

    function output(buf) {
      var bytes = new Uint8Array(buf);
      var n = bytes.length;
      pending += n;
      term.write(bytes, function () {
        pending -= n;
        if (paused && pending < RESUME_AT) {
          paused = false;
          sendControl({ type: "resume" });
        }
      });
      if (!paused && pending > PAUSE_AT) {
        paused = true;
        sendControl({ type: "pause" });
      }
    }

    function refit() {
      // fit() throws while the element has no size (e.g. display:none); the next layout event retries.
      try { fit.fit(); } catch (e) { /* ignore */ }
    }

    function sendResize() {
      if (term.cols === lastCols && term.rows === lastRows) return;
      if (sendControl({ type: "resize", cols: term.cols, rows: term.rows })) {
        lastCols = term.cols;
        lastRows = term.rows;
      }
    }

    function onLayout() {
      clearTimeout(fitTimer);
      fitTimer = setTimeout(function () { refit(); sendResize(); }, 100);
    }

    if (window.ResizeObserver) new ResizeObserver(onLayout).observe(el);
    window.addEventListener("resize", onLayout);
    if (document.fonts && document.fonts.ready) document.fonts.ready.then(onLayout);

    term.onData(function (data) { sendInput(encoder.encode(data)); });
    term.onBinary(function (data) {
      var bytes = new Uint8Array(data.length);
      for (var i = 0; i < data.length; i++) bytes[i] = data.charCodeAt(i) & 0xff;
      sendInput(bytes);
    });
    term.onTitleChange(function (t) { document.title = t ? t + " \u2014 " + baseTitle : baseTitle; });

    term.attachCustomKeyEventHandler(function (ev) {
      // Only Ctrl+Shift+C / Ctrl+Shift+V are ours; plain Ctrl+C must reach the remote as ^C.
      if (ev.type !== "keydown" || !ev.ctrlKey || !ev.shiftKey || ev.altKey || ev.metaKey) return true;
      if (ev.code === "KeyC") {
        ev.preventDefault();
        copySelection(term);
        return false;
      }
      if (ev.code === "KeyV" && navigator.clipboard && navigator.clipboard.readText) {
        ev.preventDefault();
        navigator.clipboard.readText().then(function (text) {
          if (text && !stopped) term.paste(text);
        }, function (err) { console.warn("eic: clipboard read refused:", err); });
        return false;
      }
      return true; // no async clipboard: the browser's own paste event reaches xterm's textarea
    });

    ws.onopen = function () {
      refit();
      sendResize();
      flush();
    };

    ws.onmessage = function (ev) {
      if (typeof ev.data !== "string") { output(ev.data); return; }
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (!msg || stopped) return;
      if (msg.type === "ready") {
        setStatus("connected");
        if (msg.title) { baseTitle = msg.title; document.title = msg.title; }
      } else if (msg.type === "exit") {
        var text = msg.reason || "Session ended";
        if (typeof msg.status === "number") text += " (exit status " + msg.status + ")";
        finish("disconnected", text, "info");
      } else if (msg.type === "error") {
        finish("error", msg.message || "Error", "error");
      }
    };

    ws.onclose = function (ev) {
      var text = "Connection closed (code " + ev.code + ")" + (ev.reason ? ": " + ev.reason : "");
      finish("disconnected", text, ev.code === 1000 ? "info" : "error");
    };

    if (disconnectBtn) {
      disconnectBtn.addEventListener("click", function () {
        finish("disconnected", "You disconnected.", "info");
        ws.close(1000);
      });
    }
  }

  function copySelection(term) {
    var text = term.getSelection();
    if (!text) return;
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).catch(function (err) { console.warn("eic: copy failed:", err); });
    } else {
      // Insecure context: xterm's own "copy" listener fills the clipboard with the selection.
      document.execCommand("copy");
    }
  }

  // ---------------------------------------------------------------- player

  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var sec = s % 60;
    return Math.floor(s / 60) + ":" + (sec < 10 ? "0" : "") + sec;
  }

  // asciicast v2: a JSON header line, then one [time, code, data] array per line.
  // Times are rebased so that no gap exceeds IDLE_CAP seconds.
  function parseCast(text) {
    var lines = text.split("\n");
    var header = JSON.parse(lines[0]);
    if (!header || typeof header !== "object") throw new Error("bad asciicast header");
    var events = [], prevRaw = 0, at = 0;
    for (var i = 1; i < lines.length; i++) {
      var line = lines[i].trim();
      if (!line) continue;
      var ev;
      try { ev = JSON.parse(line); } catch (e) { ev = null; } // typically a truncated last line
      if (!Array.isArray(ev) || typeof ev[0] !== "number" || typeof ev[1] !== "string") continue;
      at += Math.min(Math.max(ev[0] - prevRaw, 0), IDLE_CAP);
      prevRaw = Math.max(prevRaw, ev[0]);
      events.push({ t: at, code: ev[1], data: String(ev[2] == null ? "" : ev[2]) });
    }
    return {
      cols: header.width > 0 ? Math.floor(header.width) : 80,
      rows: header.height > 0 ? Math.floor(header.height) : 24,
      events: events,
      total: events.length ? events[events.length - 1].t : 0
    };
  }

  function playerPage(el) {
    var playBtn = byId("play"), restartBtn = byId("restart"), skipBtn = byId("skip");
    var speedSel = byId("speed"), clockEl = byId("clock"), markersEl = byId("markers");

    el.setAttribute("data-state", "loading");
    fetch(el.getAttribute("data-cast"), { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (text) { start(parseCast(text)); })
      .catch(function (err) {
        el.setAttribute("data-state", "error");
        var p = document.createElement("p");
        p.className = "error";
        p.textContent = "Could not load the recording: " + err.message;
        el.parentNode.insertBefore(p, el);
      });

    function start(cast) {
      var term = newTerminal({ cols: cast.cols, rows: cast.rows, disableStdin: true, cursorBlink: false });
      openTerminal(term, el);
      expose(term, null);

      var next = 0;          // index of the next event to apply
      var pos = 0;           // playback position, recording seconds
      var playing = false;
      var baseWall = 0, basePos = 0, timer = null;
      if (speedSel && !speedSel.value) speedSel.value = "1";

      function speed() { return (speedSel && parseFloat(speedSel.value)) || 1; }

      function setState(state) {
        el.setAttribute("data-state", state);
        if (playBtn) playBtn.textContent = state === "playing" ? "Pause" : state === "ended" ? "Replay" : "Play";
      }

      function showClock() {
        if (clockEl) clockEl.textContent = clock(pos) + " / " + clock(cast.total);
      }

      // Apply every event up to time t in order; output is batched into one write per run.
      function applyUntil(t) {
        var out = "";
        while (next < cast.events.length && cast.events[next].t <= t) {
          var ev = cast.events[next++];
          if (ev.code === "o") {
            out += ev.data;
          } else if (ev.code === "r") {
            var m = /^(\d+)x(\d+)$/.exec(ev.data);
            if (m) {
              // Writes are parsed asynchronously: resize after what came before it is parsed.
              var cols = +m[1], rows = +m[2];
              term.write(out, function () { term.resize(cols, rows); });
              out = "";
            }
          }
        }
        if (out) term.write(out);
      }

      function tick() {
        timer = null;
        if (!playing) return;
        pos = Math.min(cast.total, basePos + (performance.now() - baseWall) / 1000 * speed());
        applyUntil(pos);
        showClock();
        if (next >= cast.events.length) { end(); return; }
        var wait = (cast.events[next].t - pos) / speed() * 1000;
        timer = setTimeout(tick, Math.max(0, Math.min(wait, 250))); // 250 ms keeps the clock moving
      }

      function end() {
        playing = false;
        pos = cast.total;
        showClock();
        // Mark "ended" only once xterm has parsed everything, so tests can read the buffer.
        term.write("", function () { if (!playing && next >= cast.events.length) setState("ended"); });
      }

      function play() {
        if (next >= cast.events.length) seek(0);
        playing = true;
        basePos = pos;
        baseWall = performance.now();
        setState("playing");
        clearTimeout(timer);
        tick();
      }

      function pause() {
        playing = false;
        clearTimeout(timer);
        timer = null;
        setState("paused");
      }

      function seek(t) {
        if (t < pos || t === 0) {
          term.reset();
          term.resize(cast.cols, cast.rows);
          next = 0;
        }
        pos = t;
        applyUntil(t);
        basePos = pos;
        baseWall = performance.now();
        showClock();
        if (next >= cast.events.length) {
          clearTimeout(timer);
          end();
        }
      }

      if (playBtn) playBtn.addEventListener("click", function () { if (playing) pause(); else play(); });
      if (restartBtn) restartBtn.addEventListener("click", function () { seek(0); play(); });
      if (skipBtn) skipBtn.addEventListener("click", function () { seek(cast.total); });
      if (speedSel) speedSel.addEventListener("change", function () { basePos = pos; baseWall = performance.now(); });

      if (markersEl) {
        cast.events.forEach(function (ev) {
          if (ev.code !== "m") return;
          var li = document.createElement("li");
          var b = document.createElement("button");
          b.type = "button";
          b.className = "marker";
          b.textContent = clock(ev.t) + "  " + (ev.data || "marker");
          b.addEventListener("click", function () {
            var wasPlaying = playing;
            seek(ev.t);
            if (wasPlaying && next < cast.events.length) { playing = true; setState("playing"); tick(); }
          });
          li.appendChild(b);
          markersEl.appendChild(li);
        });
      }

      showClock();
      play();
    }
  }

  // ---------------------------------------------------------------- any page

  function pageHelpers() {
    document.addEventListener("submit", function (ev) {
      var form = ev.target;
      if (form.matches && form.matches("form.confirm") &&
          !window.confirm(form.getAttribute("data-confirm") || "Are you sure?")) {
        ev.preventDefault();
      }
    });
    var times = document.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var t = times[i];
      if (t.textContent.trim() !== "") continue;
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d.getTime())) continue;
      t.textContent = d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
      if (!t.title) t.title = d.toISOString();
    }
  }

  function init() {
    pageHelpers();
    var termEl = byId("terminal");
    if (termEl && termEl.getAttribute("data-socket")) terminalPage(termEl);
    var playerEl = byId("player");
    if (playerEl && playerEl.getAttribute("data-cast")) playerPage(playerEl);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
