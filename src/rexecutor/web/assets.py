"""The dashboard's stylesheet and script, served by the app itself (no CDN, no build step)."""

from __future__ import annotations

__all__ = ["CSS", "JS"]

CSS = """
:root { --bg:#f7f7f8; --fg:#1d1d22; --muted:#6b6b76; --line:#dedee3; --card:#fff;
  --ok:#1a7f37; --bad:#c62828; --warn:#a66a00; --info:#0b62b5; --cancel:#8e3bb0;
  --sched:#087a8a; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  background:var(--bg); color:var(--fg); }
header { display:flex; gap:1.2rem; align-items:center; padding:.6rem 1.2rem; background:#23232b;
  color:#fff; }
header a { color:#ddd; text-decoration:none; }
header nav { display:flex; gap:1rem; }
header nav a[aria-current] { color:#fff; border-bottom:2px solid #fff; }
.brand { font-weight:700; color:#fff !important; }
.pill { background:#f2c94c; color:#23232b; border-radius:9px; padding:0 .5rem; font-size:12px; }
.updated { margin-left:auto; color:#aaa; font-size:12px; }
.updated.offline { color:#ff8a80; }
main { padding:1rem 1.2rem 3rem; max-width:1280px; }
h1 { font-size:20px; margin:.2rem 0 1rem; }
h2 { font-size:15px; margin:1.4rem 0 .5rem; }
a { color:var(--info); }
.muted { color:var(--muted); }
.flash { background:#e6f4ea; border:1px solid #b7dfc3; padding:.5rem .8rem; border-radius:6px; }
.message { font-size:15px; }
.cards { display:grid; grid-template-columns:repeat(6, minmax(110px, 1fr)); gap:.6rem; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px;
  padding:.6rem .8rem;
  text-decoration:none; color:var(--fg); border-top:4px solid var(--line); }
.card .count { display:block; font-size:24px; font-weight:650; }
.card .label { color:var(--muted); }
.card.st-complete { border-top-color:var(--ok);
  } .card.st-discarded { border-top-color:var(--bad); }
.card.st-retryable { border-top-color:var(--warn);
  } .card.st-executing { border-top-color:var(--info); }
.card.st-cancelled { border-top-color:var(--cancel);
  } .card.st-scheduled { border-top-color:var(--sched); }
.charts { display:grid; grid-template-columns:1fr 1fr; gap:1rem; margin-top:1rem; }
figure { margin:0; background:var(--card); border:1px solid var(--line); border-radius:8px;
  padding:.6rem; }
figcaption { font-weight:600; margin-bottom:.3rem; }
.chart { width:100%; height:auto; }
.chart .ok { fill:var(--ok); } .chart .bad { fill:var(--bad); }
.chart .axis { stroke:var(--line); } .chart .tick { font-size:11px; fill:var(--muted); }
.waiting { color:var(--warn); font-size:12px; white-space:nowrap; }
.dag-box { overflow:auto; max-height:70vh; }
.dag .edge { fill:none; stroke:#8a8a96; stroke-width:1.5; } .dag .arrow { fill:#8a8a96; }
.dag .node rect { stroke:#23232b; stroke-width:1; }
.dag .node text { fill:#fff; font-size:12px; } .dag .node .name { font-weight:650; }
.dag .node.blocked rect { stroke:var(--warn); stroke-width:2.5; stroke-dasharray:6 4; }
.dag .node:hover rect, .dag .node:focus rect { stroke-width:3; }
.dag .st-complete rect, .swatch.st-complete { fill:var(--ok); background:var(--ok); }
.dag .st-discarded rect, .swatch.st-discarded { fill:var(--bad); background:var(--bad); }
.dag .st-retryable rect, .swatch.st-retryable { fill:var(--warn); background:var(--warn); }
.dag .st-executing rect, .swatch.st-executing { fill:var(--info); background:var(--info); }
.dag .st-cancelled rect, .swatch.st-cancelled { fill:var(--cancel); background:var(--cancel); }
.dag .st-scheduled rect, .swatch.st-scheduled { fill:var(--sched); background:var(--sched); }
ul.legend { display:flex; flex-wrap:wrap; gap:1rem; list-style:none; padding:0; }
.swatch { display:inline-block; width:14px; height:14px; border-radius:3px;
  vertical-align:-2px; margin-right:.3rem; }
.swatch.blocked { border:2px dashed var(--warn); }
table.grid { border-collapse:collapse; width:100%; background:var(--card);
  border:1px solid var(--line); }
.grid th, .grid td { padding:.35rem .6rem; border-bottom:1px solid var(--line); text-align:left;
  vertical-align:top; }
.grid thead th { background:#efeff2; font-weight:600; }
.num { text-align:right !important; font-variant-numeric:tabular-nums; }
.badge { border-radius:9px; padding:0 .5rem; font-size:12px; color:#fff; white-space:nowrap; }
.st-complete.badge { background:var(--ok); } .st-discarded.badge { background:var(--bad); }
.st-retryable.badge { background:var(--warn); } .st-executing.badge { background:var(--info); }
.st-cancelled.badge { background:var(--cancel); } .st-scheduled.badge { background:var(--sched); }
.badge.paused { background:var(--warn); } .badge.running { background:var(--ok); }
.paused-note { background:#fff4d6; border:1px solid #f2c94c; padding:.5rem .8rem;
  border-radius:6px; }
.executors form.action { margin:0 .4rem .2rem 0; }
.tag { background:#e8e8ee; border-radius:4px; padding:0 .35rem; font-size:12px; }
.err { color:var(--bad); }
td.when { white-space:nowrap; }
.filters { display:flex; gap:.8rem; align-items:end; flex-wrap:wrap; margin-bottom:.8rem; }
.filters label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); }
input, select, button { font:inherit; padding:.25rem .5rem; border:1px solid #c8c8d0;
  border-radius:5px; }
button { background:#fff; cursor:pointer; }
button.danger { background:var(--bad); color:#fff; border-color:var(--bad); }
button.bulk { background:var(--warn); color:#fff; border-color:var(--warn); }
form.action { display:inline-flex; gap:.4rem; margin:0 .6rem .6rem 0; }
.pager { display:flex; gap:1rem; margin:.6rem 0; }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:.2rem 1rem;
  background:var(--card);
  border:1px solid var(--line); border-radius:8px; padding:.8rem; }
dl.facts dt { color:var(--muted); } dl.facts dd { margin:0; }
.two { display:grid; grid-template-columns:1fr 1fr; gap:1rem; }
pre { background:#23232b; color:#eee; padding:.6rem; border-radius:6px; overflow:auto;
  max-height:24rem; }
ol.history { padding-left:1.2rem; } ol.history li { margin:.15rem 0; }
.ev-error strong, .ev-discarded strong { color:var(--bad); }
.ev-completed strong { color:var(--ok); } .ev-cancelled strong { color:var(--cancel); }
ol.errors { padding-left:1.2rem; } ol.errors li { margin-bottom:.6rem; }
ol.errors p { margin:.1rem 0; }
.alive { color:var(--ok); font-weight:600; } .dead { color:var(--bad); font-weight:600; }
@media (max-width: 800px) { .cards { grid-template-columns:repeat(3, 1fr); }
  .charts, .two { grid-template-columns:1fr; } }
"""

JS = """
(function () {
  "use strict";
  var every = Number(document.body.getAttribute("data-refresh") || "0") * 1000;
  var stamp = document.getElementById("updated");

  function say(text, offline) {
    if (!stamp) return;
    stamp.textContent = text;
    stamp.className = offline ? "updated offline" : "updated";
  }

  // Not while someone types in the live part, nor while a field there holds an edit not yet
  // sent (a refresh would throw it away between typing and pressing the button).
  function busy(live) {
    var active = document.activeElement;
    if (active && live.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) {
      return true;
    }
    var fields = live.querySelectorAll("input[type=text], textarea");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value !== fields[i].defaultValue) return true;
    }
    return false;
  }

  function refresh() {
    var live = document.getElementById("live");
    if (!live || document.hidden || busy(live)) return;
    fetch(window.location.href, {
      headers: { "X-Rexecutor-Fragment": "1" },
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.text();
    }).then(function (html) {
      var open = [];
      live.querySelectorAll("details[open][id]").forEach(function (d) { open.push(d.id); });
      live.innerHTML = html;
      open.forEach(function (id) {
        var d = document.getElementById(id);
        if (d) d.open = true;
      });
      say("live · updated " + new Date().toLocaleTimeString(), false);
    }).catch(function (error) {
      say("offline · " + error.message, true);
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (!question) return;
    if (!window.confirm(question)) {
      event.preventDefault();
      return;
    }
    var flag = document.createElement("input");
    flag.type = "hidden";
    flag.name = "confirmed";
    flag.value = "1";
    form.appendChild(flag);
  });

  if (every > 0) {
    say("live", false);
    window.setInterval(refresh, every);
  }
})();
"""
