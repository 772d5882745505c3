// The /status page: one self-contained HTML document — uPlot's script and stylesheet are inlined from
// node_modules, so the page needs no CDN and works offline — that polls status.json every second and draws
// req/s and 429/s, p50/p99 latency, tokens/min per provider and model, upstream health, the most limited keys
// and the bucket table's occupancy. Everything it shows comes from status.json; it writes text with
// textContent only, so a label value can never become markup.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { createHash } from 'node:crypto'

export interface StatusPage {
  html: string
  /** Content-Security-Policy allowing exactly the page's inline scripts and styles, and fetches to itself */
  csp: string
}

let cached: StatusPage | null = null

export function statusPage(): StatusPage {
  if (cached !== null) return cached
  let lib = ''
  let css = ''
  try {
    const dist = path.dirname(createRequire(import.meta.url).resolve('uplot'))
    lib = readFileSync(path.join(dist, 'uPlot.iife.min.js'), 'utf8')
    css = readFileSync(path.join(dist, 'uPlot.min.css'), 'utf8')
  } catch {
    // without uplot installed the page still shows its tables; the charts say what is missing
    lib = 'window.uPlot = null'
  }
  const style = css + STYLE
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>leaky-tokens status</title>
<link rel="icon" href="data:,">
<style>${style}</style>
<script>${lib}</script>
</head><body>
${BODY}
<script>${SCRIPT}</script>
</body></html>
`
  const h = (s: string) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`
  const csp = [
    "default-src 'none'",
    `script-src ${h(lib)} ${h(SCRIPT)}`,
    // uPlot styles its elements through CSSOM (element.style), which style-src does not govern
    `style-src ${h(style)}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ')
  cached = { html, csp }
  return cached
}

const STYLE = `
:root { --bg: #0f1419; --panel: #171d24; --line: #2a333d; --text: #d6dde4; --dim: #8b98a5; --ok: #3fb950;
  --warn: #d29922; --bad: #f85149; --idle: #6e7681; }
* { box-sizing: border-box; }
body { margin: 0; padding: 16px 20px; background: var(--bg); color: var(--text);
  font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { display: flex; align-items: baseline; gap: 18px; flex-wrap: wrap; margin-bottom: 14px; }
header h1 { font-size: 18px; margin: 0; font-weight: 600; }
header .fact { color: var(--dim); }
header .fact b { color: var(--text); font-weight: 600; }
#error { color: var(--bad); font-weight: 600; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 14px; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; min-width: 0; }
.panel h2 { font-size: 13px; margin: 0 0 8px; font-weight: 600; color: var(--dim); text-transform: uppercase; letter-spacing: .04em; }
.chart { min-height: 220px; }
.panel h2.gap { margin-top: 14px; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { white-space: normal; vertical-align: bottom; }
.panel { overflow-x: auto; }
th { color: var(--dim); font-weight: 500; }
td.num, th.num { text-align: right; }
.empty { color: var(--dim); font-style: italic; }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; color: #0b0f14; font-weight: 600; }
.badge.ok { background: var(--ok); } .badge.degraded { background: var(--warn); }
.badge.failing, .badge.open { background: var(--bad); } .badge.idle { background: var(--idle); }
.bar { height: 14px; background: var(--line); border-radius: 3px; overflow: hidden; margin: 6px 0; }
.bar > div { height: 100%; background: var(--ok); width: 0; }
.u-legend { color: var(--text); font-size: 12px; }
.u-legend .u-marker { border-radius: 2px; }
`

const BODY = `<header>
  <h1>leaky-tokens</h1>
  <span class="fact">version <b id="f-version">–</b></span>
  <span class="fact">generation <b id="f-generation">–</b></span>
  <span class="fact">config <b id="f-config">–</b></span>
  <span class="fact">workers <b id="f-workers">–</b></span>
  <span class="fact">uptime <b id="f-uptime">–</b></span>
  <span class="fact">in flight <b id="f-inflight">–</b></span>
  <span class="fact" id="fact-redis" hidden>redis <b id="f-redis">–</b></span>
  <span id="error"></span>
</header>
<div class="grid">
  <section class="panel"><h2>Requests / s</h2><div id="c-requests" class="chart"></div></section>
  <section class="panel"><h2>Latency (ms)</h2><div id="c-latency" class="chart"></div></section>
  <section class="panel"><h2>Tokens / min by provider · model</h2><div id="c-tokens" class="chart"></div></section>
  <section class="panel"><h2>Upstreams</h2>
    <table><thead><tr><th>upstream</th><th>provider</th><th class="num">req/s</th><th class="num">errors</th>
    <th class="num">conns in use / open</th><th>health</th></tr></thead><tbody id="t-upstreams"></tbody></table></section>
  <section class="panel"><h2>Targets</h2>
    <table><thead><tr><th>upstream</th><th>target</th><th>state</th><th class="num">in flight</th><th class="num">ejections</th>
    <th class="num">latency (ms)</th></tr></thead><tbody id="t-targets"></tbody></table></section>
  <section class="panel"><h2>Spend (USD, UTC)</h2>
    <div id="f-spend" class="empty">no usage ledger (ledger.file or state_file)</div>
    <table><thead><tr><th>org</th><th class="num">today</th><th class="num">this month</th></tr></thead><tbody id="t-spend-org"></tbody></table>
    <table><thead><tr><th>model</th><th class="num">today</th><th class="num">this month</th></tr></thead><tbody id="t-spend-model"></tbody></table>
    <h2 class="gap">Budgets</h2>
    <table><thead><tr><th>budget</th><th>subject</th><th class="num">spent / limit</th><th class="num">burn</th><th>resets</th></tr></thead>
    <tbody id="t-budgets"></tbody></table></section>
  <section class="panel"><h2>Most limited keys (5 min)</h2>
    <table><thead><tr><th>key id</th><th class="num">429s</th><th class="num">requests</th></tr></thead>
    <tbody id="t-keys"></tbody></table></section>
  <section class="panel"><h2>Models</h2>
    <table><thead><tr><th>provider</th><th>model</th><th class="num">tokens/min</th><th class="num">total</th></tr></thead>
    <tbody id="t-models"></tbody></table>
    <h2 class="gap">Bucket table</h2>
    <div class="bar"><div id="b-table"></div></div><div id="f-table" class="empty">not reported</div></section>
</div>`

// Plain ES2017 for any browser; no framework. window.leakyStatus exposes the charts for the browser test.
const SCRIPT = `
'use strict';
(function () {
  var COLORS = ['#58a6ff', '#f0883e', '#3fb950', '#d2a8ff', '#ff7b72', '#e3b341', '#79c0ff'];
  var state = { updates: 0, errors: 0, charts: {}, last: null };
  window.leakyStatus = state;
  var $ = function (id) { return document.getElementById(id); };

  function text(id, v) { $(id).textContent = v; }
  function fmtUptime(s) {
    if (s < 120) return s + ' s';
    if (s < 7200) return Math.round(s / 60) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }
  function short(v) {
    var a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + 'G';
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
    if (a >= 1e3) return (v / 1e3).toFixed(a >= 1e4 ? 0 : 1) + 'k';
    return String(Math.round(v * 100) / 100);
  }
  function fmt(n, d) { return n === null || n === undefined ? '–' : Number(n).toLocaleString('en', { maximumFractionDigits: d || 0 }); }
  // A value between two gaps has no neighbour to draw a line to: latency after a short burst is one such second among
  // quiet ones (no request, no latency). Those values get a dot, the rest stay lines.
  function lonely(u, si) {
    var d = u.data[si], out = [];
    for (var i = 0; i < d.length; i++) {
      if (d[i] != null && (i === 0 || d[i - 1] == null) && (i === d.length - 1 || d[i + 1] == null)) out.push(i);
    }
    return out.length ? out : null;
  }

  function chart(id, key, series, t, cols) {
    var el = $(id);
    var sig = series.map(function (s) { return s.label; }).join('|');
    var data = [t].concat(cols);
    var c = state.charts[key];
    if (!window.uPlot) { el.textContent = 'uPlot is not installed (npm install uplot)'; return; }
    if (c && c.sig === sig) { c.plot.setData(data); return; }
    if (c) c.plot.destroy();
    var opts = {
      width: Math.max(300, el.clientWidth), height: 220,
      scales: { x: { time: true } },
      axes: [{ stroke: '#8b98a5', grid: { stroke: '#2a333d' }, ticks: { stroke: '#2a333d' } },
             { stroke: '#8b98a5', grid: { stroke: '#2a333d' }, ticks: { stroke: '#2a333d' }, size: 56,
               values: function (u, vals) { return vals.map(short); } }],
      series: [{}].concat(series.map(function (s, i) {
        var color = s.color || COLORS[i % COLORS.length];
        return { label: s.label, stroke: color, width: 2, points: { show: false, filter: lonely, size: 7, fill: color },
                 value: function (u, v) { return v === null ? '–' : fmt(v, 2); } };
      }))
    };
    state.charts[key] = { sig: sig, plot: new uPlot(opts, data, el) };
  }

  function row(tbody, cells) {
    var tr = document.createElement('tr');
    cells.forEach(function (c) {
      var td = document.createElement('td');
      if (c && typeof c === 'object') {
        if (c.badge) { var b = document.createElement('span'); b.className = 'badge ' + c.badge; b.textContent = c.badge; td.appendChild(b); }
        else td.textContent = c.text;
        if (c.num) td.className = 'num';
      } else td.textContent = c;
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
  }
  function fill(id, items, cols, render) {
    var tbody = $(id);
    tbody.textContent = '';
    if (!items.length) { var tr = document.createElement('tr'); var td = document.createElement('td');
      td.colSpan = cols; td.className = 'empty'; td.textContent = 'none yet'; tr.appendChild(td); tbody.appendChild(tr); return; }
    items.forEach(function (it) { row(tbody, render(it)); });
  }

  // today's and this month's rows joined by org (or model): the month lists every spender, today may lack some
  function periods(today, month, key) {
    var t = {}; (today ? today[key] : []).forEach(function (r) { t[r.group] = r.cost_usd; });
    return (month ? month[key] : []).map(function (r) { return [r.group || '(none)', { text: t[r.group] || '0.000000', num: 1 }, { text: r.cost_usd, num: 1 }]; });
  }

  function spend(p) {
    if (!p) return;
    $('f-spend').hidden = p.ledger;
    if (p.ledger) {
      $('f-spend').textContent = '';
      fill('t-spend-org', periods(p.today, p.month, 'by_org'), 3, function (r) { return r; });
      fill('t-spend-model', periods(p.today, p.month, 'by_model'), 3, function (r) { return r; });
    }
    var rows = [];
    p.budgets.forEach(function (b) {
      if (b.cluster) rows.push([b.budget, '(cluster: in Redis)', { text: '– / ' + fmt(b.limit_usd, 2), num: 1 }, { text: '–', num: 1 }, b.resets_at || 'rolling']);
      b.spent.forEach(function (x) {
        rows.push([b.budget, b.per + ' ' + x.subject, { text: fmt(x.usd, 4) + ' / ' + fmt(b.limit_usd, 2), num: 1 },
          { text: fmt(100 * x.usd / b.limit_usd, 1) + ' %', num: 1 }, b.resets_at || 'rolling']);
      });
    });
    fill('t-budgets', rows, 5, function (r) { return r; });
  }

  function render(s) {
    text('f-version', s.version); text('f-generation', s.generation); text('f-config', 'v' + s.config_version);
    text('f-workers', s.workers); text('f-uptime', fmtUptime(s.uptime_s)); text('f-inflight', s.inflight);
    // cluster limits: shown only when a redis section is configured
    $('fact-redis').hidden = !s.redis;
    if (s.redis) {
      var fb = s.redis.fallback.open + s.redis.fallback.closed + s.redis.fallback.local;
      text('f-redis', (s.redis.up ? 'up' : 'DOWN, on_error decides') + ' · ' + fmt(s.redis.decisions.exact + s.redis.decisions.lease) +
        ' decisions · ' + fmt(fb) + ' by on_error · ' + fmt(s.redis.errors + s.redis.timeouts) + ' failed calls');
    }
    var x = s.series;
    chart('c-requests', 'requests', [{ label: 'req/s' }, { label: '429/s', color: '#f85149' }], x.t, [x.rps, x.limited_ps]);
    chart('c-latency', 'latency', [{ label: 'p50' }, { label: 'p99', color: '#f0883e' }], x.t, [x.p50_ms, x.p99_ms]);
    var lines = s.tokens.lines;
    chart('c-tokens', 'tokens', lines.length ? lines.map(function (l) { return { label: l.provider + ' · ' + l.model }; }) : [{ label: 'tokens/min' }],
      s.tokens.t, lines.length ? lines.map(function (l) { return l.per_min; }) : [s.tokens.t.map(function () { return 0; })]);
    fill('t-upstreams', s.upstreams, 6, function (u) {
      return [u.name, u.provider, { text: fmt(u.rps, 2), num: 1 }, { text: fmt(u.error_ratio * 100, 1) + ' %', num: 1 },
        { text: u.connections_in_use + ' / ' + u.connections_open, num: 1 }, { badge: u.health }];
    });
    // upstream targets (README "Upstreams and traffic"): up, ejected by passive outlier detection, or unhealthy
    fill('t-targets', s.targets || [], 6, function (x) {
      return [x.upstream, x.target, x.state === 'up' ? 'up' : x.state.toUpperCase(), { text: fmt(x.inflight), num: 1 },
        { text: fmt(x.ejections), num: 1 }, { text: x.latency_ewma_ms === null ? '–' : fmt(x.latency_ewma_ms, 1), num: 1 }];
    });
    spend(s.spend);
    fill('t-keys', s.limited_keys, 3, function (k) { return [k.key_id, { text: fmt(k.limited), num: 1 }, { text: fmt(k.requests), num: 1 }]; });
    fill('t-models', s.models, 4, function (m) { return [m.provider, m.model, { text: fmt(m.per_min), num: 1 }, { text: fmt(m.total), num: 1 }]; });
    if (s.table) {
      var pct = s.table.capacity > 0 ? (100 * s.table.used / s.table.capacity) : 0;
      $('b-table').style.width = pct.toFixed(1) + '%';
      $('f-table').className = '';
      text('f-table', fmt(s.table.used) + ' of ' + fmt(s.table.capacity) + ' slots (' + pct.toFixed(1) + ' %)');
    }
  }

  function tick() {
    fetch('status.json', { cache: 'no-store', credentials: 'same-origin' }).then(function (r) {
      if (!r.ok) throw new Error('status.json: HTTP ' + r.status);
      return r.json();
    }).then(function (s) {
      state.last = s; render(s); state.updates++; text('error', '');
    }).catch(function (e) { state.errors++; text('error', String(e.message || e)); });
  }
  window.addEventListener('resize', function () {
    Object.keys(state.charts).forEach(function (k) {
      var c = state.charts[k]; var el = c.plot.root.parentNode;
      c.plot.setSize({ width: Math.max(300, el.clientWidth), height: 220 });
    });
  });
  tick();
  setInterval(tick, 1000);
})();
`
