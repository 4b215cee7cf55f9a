// The supervisors' wall board: live queues, callers waiting, calls in progress and agents
// from the ACD's live feed (/api/acd/events, a WebSocket that sends a snapshot whenever who is
// where changes; the clocks tick here between snapshots, so nothing polls), the alerts the
// server raises, listen / whisper / barge through the supervisor's own browser softphone
// (JsSIP; the monitoring leg rings from `monitor` and is answered by itself), forcing an
// agent's state, and the KPI and ticket analytics pages with their charts (SVG drawn by the
// server) and CSV downloads.
import JsSIP from 'jssip';
import {
  answerOptions, attachAudio as playOn, badge as setBadge, client, escapeHtml as esc, session as loginSession, userAgent,
} from '../common/page.js';

const $ = (id) => document.getElementById(id);

const app = {
  token: null,
  me: null,
  snap: null, // the last snapshot
  snapAt: 0, // when it came (ms)
  names: new Map(), // agent id -> { username, display_name }
  ua: null,
  session: null, // the monitoring leg
  monitoring: null, // { callId, mode }
  updates: 0, // snapshots rendered (for the tests)
};
window.hotline = app;

const { request, api } = client(() => app.token);
const fmtSecs = (s) => {
  s = Math.max(0, Math.floor(s));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}` : `${m}:${String(r).padStart(2, '0')}`;
};
const pct = (v) => (v === null || v === undefined ? '-' : `${v.toFixed(1)} %`);
const agentName = (id) => {
  const n = app.names.get(id);
  return n ? (n.display_name || n.username) : `agent ${id}`;
};

const badge = (id, state, text) => setBadge($(id), state, text);

// ---- log in ------------------------------------------------------------------------------

async function start() {
  $('board').hidden = false;
  $('who').textContent = `${app.me.display_name || app.me.username} (${app.me.role})`;
  await loadNames();
  startFeed();
  setInterval(tick, 1000);
  if (app.me.role === 'supervisor') {
    try {
      startPhone(await api('GET', '/api/softphone'));
    } catch (e) {
      badge('reg', 'failed', `softphone: ${e.message}`);
    }
    $('frequent-panel').hidden = false;
    setInterval(loadFrequent, 30000);
  } else {
    badge('reg', 'down', 'softphone: supervisors only');
  }
  const today = new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 10);
  for (const form of ['kpi-form', 'an-form']) {
    $(form).from.value = today;
    $(form).to.value = today;
  }
}

async function loadNames() {
  try {
    for (const a of await api('GET', '/api/agents')) app.names.set(a.id, a);
  } catch (e) {
    console.warn(`agents: ${e.message}`);
  }
}

// ---- tabs ----------------------------------------------------------------------------------

for (const b of document.querySelectorAll('.tab')) {
  b.addEventListener('click', () => {
    for (const o of document.querySelectorAll('.tab')) o.setAttribute('aria-pressed', String(o === b));
    for (const p of document.querySelectorAll('.tab-page')) p.hidden = p.id !== b.dataset.tab;
    if (b.dataset.tab === 'kpis') loadKpis();
    if (b.dataset.tab === 'analytics') loadAnalytics();
  });
}

// ---- the live feed ---------------------------------------------------------------------------

function startFeed() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/api/acd/events?token=${encodeURIComponent(app.token)}`);
  ws.onopen = () => badge('feed', 'up', 'live feed: up');
  ws.onmessage = (m) => {
    app.snap = JSON.parse(m.data);
    app.snapAt = Date.now();
    if (app.snap.agents.some((a) => !app.names.has(a.id))) loadNames().then(render);
    render();
  };
  ws.onclose = () => {
    badge('feed', 'failed', 'live feed: down (reconnecting)');
    setTimeout(startFeed, 1000);
  };
}

// Seconds since the snapshot, added to its clocks.
const since = () => (Date.now() - app.snapAt) / 1000;

function tick() {
  $('clock').textContent = new Date().toLocaleTimeString('zh-CN', { hour12: false });
  if (app.snap) renderClocks();
}

function render() {
  const s = app.snap;
  if (!s) return;
  app.updates += 1;
  // The frequent callers' queue choices come from the first snapshot.
  if (!app.frequentLoaded && app.me.role === 'supervisor') {
    app.frequentLoaded = true;
    loadFrequent();
  }
  // Alerts.
  $('alerts').innerHTML = s.alerts
    .map((a) => `<div class="alert" data-kind="${esc(a.kind)}" data-subject="${esc(a.subject)}">⚠ ${esc(alertText(a))}</div>`)
    .join('');
  renderNode(s.node);
  // Totals.
  $('waiting-total').textContent = s.waiting.length;
  $('talking-total').textContent = s.agents.filter((a) => a.state === 'on_call').length;
  $('conn-24h').textContent = pct(s.connection_rate_24h_pct);
  // Queues.
  $('queues').tBodies[0].innerHTML = s.queues.map((q) => {
    const inQ = s.agents.filter((a) => a.queues.includes(q.name));
    const n = (st) => inQ.filter((a) => a.state === st).length;
    return `<tr data-queue="${esc(q.name)}"><td>${esc(q.name)}</td><td class="num waiting">${q.waiting}</td>`
      + `<td class="num longest" data-base="${q.longest_wait_secs}" data-live="${q.waiting > 0}" data-target="${q.target_secs}"></td>`
      + `<td class="num">${n('available')}</td><td class="num">${n('ringing')}</td><td class="num">${n('on_call')}</td>`
      + `<td class="num">${n('wrap_up')}</td><td class="num">${n('paused')}</td>`
      + `<td class="num">${q.offered_today}</td><td class="num">${q.answered_today}</td><td class="num">${q.abandoned_today}</td>`
      + `<td class="num sl">${pct(q.service_level_pct)}</td></tr>`;
  }).join('');
  // Calls: waiting first, then with agents.
  const rows = [];
  for (const w of s.waiting) {
    const state = w.ringing ? 'ringing' : w.callback ? 'callback' : w.self_service ? 'self-service' : 'waiting';
    rows.push(`<tr data-call="${esc(w.call_id)}" data-state="${state}"><td>${esc(w.call_id)}</td><td class="state-${state}">${state}</td>`
      + `<td>${esc(w.queue)}</td><td class="num dur" data-base="${w.waited_secs}"></td><td></td></tr>`);
  }
  for (const a of s.agents.filter((x) => x.state === 'on_call' && x.call_id)) {
    const mine = app.monitoring && app.monitoring.callId === a.call_id;
    const buttons = app.me.role === 'supervisor'
      ? ['listen', 'whisper', 'barge'].map((m) => `<button data-monitor="${m}" data-call="${esc(a.call_id)}"${mine && app.monitoring.mode === m ? ' aria-pressed="true"' : ''}>${m}</button>`).join(' ')
        + (mine ? ` <button data-monitor="leave" data-call="${esc(a.call_id)}">leave</button>` : '')
      : '';
    rows.push(`<tr data-call="${esc(a.call_id)}" data-state="talking"><td>${esc(a.call_id)}</td><td class="state-on_call">talking</td>`
      + `<td>${esc(agentName(a.id))}</td><td class="num dur" data-base="${a.secs_in_state}"></td><td>${buttons}</td></tr>`);
  }
  $('calls').tBodies[0].innerHTML = rows.join('') || '<tr><td colspan="5">No calls</td></tr>';
  // Agents.
  $('agents').tBodies[0].innerHTML = s.agents.map((a) => {
    const name = app.names.get(a.id);
    const force = app.me.role === 'supervisor' && name
      ? ['resume', 'pause', 'logout'].map((act) => `<button data-force="${act}" data-user="${esc(name.username)}">${act === 'resume' ? 'available' : act}</button>`).join(' ')
      : '';
    return `<tr data-agent="${a.id}" data-state="${a.state}"><td>${esc(agentName(a.id))}</td>`
      + `<td class="state-${a.state}">${esc(a.state.replace('_', ' '))}${a.reason ? ` (${esc(a.reason)})` : ''}</td>`
      + `<td class="num dur" data-base="${a.secs_in_state}"></td><td>${esc(a.queues.join(', '))}</td>`
      + `<td class="num">${a.answered_today}</td><td>${force}</td></tr>`;
  }).join('');
  renderClocks();
}

// The node: draining (new calls go to another node) and what it restored at its last start.
function renderNode(n) {
  const el = $('node-state');
  if (!n) { el.hidden = true; return; }
  const r = n.restored || {};
  const parts = [];
  if (n.draining) {
    parts.push(`本节点正在排空：不再接入新呼叫，剩余 ${n.calls_in_progress} 路通话结束后停止 / draining: no new calls, stops after the ${n.calls_in_progress} call(s) in progress`);
  }
  if (r.bindings || r.agents || r.callbacks || r.missed || r.skipped) {
    parts.push(`重启恢复 / restored at start: 注册 ${r.bindings} 个 (registrations), 座席 ${r.agents} 名 (agents), `
      + `回拨 ${r.callbacks} 个 (callbacks), 中断呼叫转入未接 ${r.missed} 个 (cut calls listed as missed)`
      + (r.skipped ? `, 无法读取已跳过 ${r.skipped} 行 (rows skipped)` : ''));
  }
  el.hidden = parts.length === 0;
  el.dataset.draining = String(!!n.draining);
  el.innerHTML = parts.map((p) => `<div>${esc(p)}</div>`).join('');
}

function alertText(a) {
  if (a.kind === 'agent_stuck') {
    const id = Number(a.subject.split(':')[1]);
    return a.message.replace(`agent ${id}`, agentName(id));
  }
  return a.message;
}

function renderClocks() {
  const add = since();
  let longest = 0;
  for (const td of document.querySelectorAll('#queues td.longest')) {
    const live = td.dataset.live === 'true';
    const secs = live ? Number(td.dataset.base) + add : 0;
    longest = Math.max(longest, secs);
    td.textContent = fmtSecs(secs);
    td.parentElement.classList.toggle('late', live && secs > Number(td.dataset.target));
  }
  $('longest-total').textContent = fmtSecs(longest);
  for (const td of document.querySelectorAll('td.dur')) td.textContent = fmtSecs(Number(td.dataset.base) + add);
}

// ---- frequent callers (Art. 12, 34: flagged, never blocked) ---------------------------------

const chinaTime = (iso) => new Date(iso).toLocaleTimeString('zh-CN', { timeZone: 'Asia/Shanghai', hour12: false });

async function loadFrequent() {
  try {
    const f = await api('GET', '/api/frequent-callers');
    $('frequent-rule').textContent = f.threshold
      ? `一小时超过 ${f.threshold} 次 / more than ${f.threshold} calls an hour`
      : '未启用 / off';
    const queues = app.snap ? app.snap.queues.map((q) => q.name) : [];
    $('frequent').tBodies[0].innerHTML = f.callers.map((c) => {
      const times = c.recent.map((r) => chinaTime(r.started_at)).join(' ');
      const route = c.route
        ? `${esc(c.route.queue)} <button data-unroute="${esc(c.caller)}">取消 / Clear</button>`
        : `<select data-for="${esc(c.caller)}">${queues.map((q) => `<option>${esc(q)}</option>`).join('')}</select>`
          + ` <button data-route="${esc(c.caller)}">转入 / Route</button>`;
      return `<tr data-caller="${esc(c.caller_masked)}" data-flagged="${c.flagged}"><td>${esc(c.caller_masked)}</td>`
        + `<td class="num${c.flagged ? ' flag' : ''}">${c.calls_last_hour}</td><td>${esc(times)}</td>`
        + `<td class="num">${c.tickets}</td><td>${route}</td></tr>`;
    }).join('') || '<tr><td colspan="5">无 / None</td></tr>';
  } catch (e) {
    $('frequent-status').textContent = e.message;
  }
}

// ---- supervisor actions ----------------------------------------------------------------------

document.addEventListener('click', async (ev) => {
  const t = ev.target;
  if (!(t instanceof HTMLButtonElement)) return;
  if (t.dataset.monitor) {
    const callId = t.dataset.call;
    const mode = t.dataset.monitor;
    try {
      if (mode === 'leave') {
        await api('DELETE', `/api/calls/${encodeURIComponent(callId)}/monitor`);
        app.monitoring = null;
        if (app.session) app.session.terminate();
        $('monitor-status').textContent = 'Left the call';
      } else {
        const r = await api('POST', `/api/calls/${encodeURIComponent(callId)}/monitor`, { mode });
        app.monitoring = { callId, mode };
        $('monitor-status').textContent = `${mode} on ${callId} (${r.state})`;
      }
    } catch (e) {
      $('monitor-status').textContent = e.message;
    }
    render();
  } else if (t.dataset.route || t.dataset.unroute) {
    const number = t.dataset.route || t.dataset.unroute;
    const path = `/api/frequent-callers/${encodeURIComponent(number)}/route`;
    try {
      if (t.dataset.route) {
        const queue = document.querySelector(`select[data-for="${CSS.escape(number)}"]`).value;
        await api('PUT', path, { queue, note: '值班长从大屏设置 / set on the wall board' });
      } else {
        await api('DELETE', path);
      }
      $('frequent-status').textContent = '';
    } catch (e) {
      $('frequent-status').textContent = e.message;
    }
    loadFrequent();
  } else if (t.dataset.force) {
    const body = t.dataset.force === 'pause' ? { reason: 'supervisor' } : undefined;
    try {
      await api('POST', `/api/agents/${encodeURIComponent(t.dataset.user)}/${t.dataset.force}`, body);
    } catch (e) {
      $('monitor-status').textContent = e.message;
    }
  }
});

// The supervisor's softphone: registered like an agent's; the monitoring leg the server
// places (From `monitor`) is answered at once, other calls are refused.
function startPhone(sp) {
  const ua = userAgent(JsSIP, sp);
  app.ua = ua;
  ua.on('registered', () => badge('reg', 'up', 'softphone: registered'));
  ua.on('unregistered', () => badge('reg', 'down', 'softphone: none'));
  ua.on('disconnected', () => badge('reg', 'down', 'softphone: reconnecting'));
  ua.on('registrationFailed', (e) => badge('reg', 'failed', `softphone: ${e.cause}`));
  ua.on('newRTCSession', (e) => {
    if (e.originator !== 'remote') return;
    const from = e.session.remote_identity.uri.user || '';
    if (from !== 'monitor' || app.session) {
      e.session.terminate({ status_code: 486 });
      return;
    }
    const session = e.session;
    app.session = session;
    session.on('peerconnection', (p) => attachAudio(p.peerconnection));
    session.on('accepted', () => {
      $('monitor-status').textContent = `${app.monitoring ? app.monitoring.mode : 'listen'}: connected`;
      if (session.connection) attachAudio(session.connection);
    });
    const over = () => {
      app.session = null;
      app.monitoring = null;
      $('monitor-status').textContent = 'Monitoring ended';
      render();
    };
    session.on('ended', over);
    session.on('failed', over);
    session.answer(answerOptions());
  });
  ua.start();
}

const attachAudio = (pc) => playOn(pc, $('remote-audio'));

// ---- KPIs ----------------------------------------------------------------------------------

const kpiColumns = (by) => [
  ['start', 'Interval'], [by, by === 'agent' ? 'Agent' : 'Queue'], ['offered', 'Offered'], ['answered', 'Answered'],
  ['abandoned', 'Abandoned'], ['answer_15s_rate', '15 s answer rate, %'], ['connection_rate', 'Connection rate, %'],
  ['asa_secs', 'ASA, s'], ['aht_secs', 'AHT, s'], ['occupancy', 'Occupancy, %'], ['callbacks_made', 'Callbacks made'],
];

// A China date's midnight as an instant.
const chinaMidnight = (d, days = 0) => new Date(Date.parse(`${d}T00:00:00+08:00`) + days * 86400e3).toISOString();

function kpiQuery(format) {
  const f = $('kpi-form');
  const p = new URLSearchParams({
    interval: f.interval.value, by: f.by.value, from: chinaMidnight(f.from.value), to: chinaMidnight(f.to.value, 1),
  });
  if (format) p.set('format', format);
  return `/api/stats/calls?${p}`;
}

async function loadKpis() {
  try {
    const data = await api('GET', kpiQuery());
    const rows = data.rows || [];
    for (const r of rows) {
      if (data.by === 'agent') r.agent = agentName(Number(r.agent));
      r.start = r.start.slice(0, 16).replace('T', ' '); // China time as the server wrote it
    }
    table($('kpi-table'), kpiColumns(data.by), rows);
    $('kpi-chart').innerHTML = await request('GET', kpiQuery('svg'));
  } catch (e) {
    $('kpi-chart').textContent = e.message;
  }
}
$('kpi-form').addEventListener('submit', (ev) => { ev.preventDefault(); loadKpis(); });
$('kpi-csv').addEventListener('click', (ev) => { ev.preventDefault(); download(kpiQuery('csv'), 'call-kpis.csv'); });

// ---- ticket analytics --------------------------------------------------------------------

function anQuery(table, format) {
  const f = $('an-form');
  const p = new URLSearchParams({ from: f.from.value, to: f.to.value });
  if (format) p.set('format', format);
  if (table === 'topics') return `/api/stats/hot-topics?${p}`;
  if (table === 'units') return `/api/stats/units?${p}`;
  p.set('by', table === 'area' ? 'district' : table);
  return `/api/stats/tickets?${p}`;
}

function table(el, columns, rows) {
  el.innerHTML = `<thead><tr>${columns.map(([, h]) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${columns.map(([k]) => {
    const v = r[k];
    const text = v === null || v === undefined ? '-' : typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(1) : v;
    return `<td class="${typeof v === 'number' ? 'num' : ''}">${esc(text)}</td>`;
  }).join('')}</tr>`).join('')}</tbody>`;
}

async function loadAnalytics() {
  try {
    const heads = { category: 'Category', area: 'District', unit: 'Handling unit', day: 'Day' };
    for (const by of ['category', 'area', 'unit', 'day']) {
      const rows = await api('GET', anQuery(by));
      table($(`t-${by}`), [['key', heads[by]], ['filed', 'Tickets']], rows);
      $(`chart-${by}`).innerHTML = await request('GET', anQuery(by, 'svg'));
    }
    const topics = await api('GET', anQuery('topics'));
    $('chart-topics').innerHTML = await request('GET', anQuery('topics', 'svg'));
    const rising = new Set(topics.rising.map((t) => t.term));
    const rows = [...topics.top, ...topics.rising.filter((t) => !topics.top.some((x) => x.term === t.term))];
    for (const r of rows) r.trend = rising.has(r.term) ? `rising ×${r.ratio.toFixed(1)}` : '';
    table($('t-topics'), [['term', 'Term'], ['tickets', 'Tickets now'], ['previous', 'Period before'], ['trend', 'Trend']], rows);
    for (const tr of $('t-topics').tBodies[0].rows) tr.classList.toggle('rising', rising.has(rows[tr.sectionRowIndex].term));
    const units = await api('GET', anQuery('units'));
    for (const u of units) for (const k of ['on_time_rate', 'return_rate', 'reopen_rate', 'satisfaction_rate']) u[k] = u[k] === null ? null : u[k] * 100;
    table($('t-units'), [['unit_name', 'Unit'], ['dispatched', 'Dispatched'], ['replied', 'Replied'], ['on_time_rate', 'On time, %'],
      ['return_rate', 'Returned, %'], ['reopen_rate', 'Reopened, %'], ['satisfaction_rate', 'Satisfied, %']], units);
  } catch (e) {
    $('t-category').textContent = e.message;
  }
}
$('an-form').addEventListener('submit', (ev) => { ev.preventDefault(); loadAnalytics(); });
for (const a of document.querySelectorAll('a.csv')) {
  a.addEventListener('click', (ev) => { ev.preventDefault(); download(anQuery(a.dataset.table, 'csv'), `${a.dataset.table}.csv`); });
}

// The live tables as they stand (the snapshot, clocks as of now), as CSV like the server's.
function liveCsv(table) {
  const s = app.snap;
  if (!s) return '';
  const add = since();
  const q = (v) => {
    const t = String(v ?? '');
    return /[",\r\n]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
  };
  const lines = (rows) => `${rows.map((r) => r.map(q).join(',')).join('\r\n')}\r\n`;
  if (table === 'queues') {
    return lines([['queue', 'waiting', 'longest_wait_secs', 'offered_today', 'answered_today', 'abandoned_today', 'service_level_pct'],
      ...s.queues.map((x) => [x.name, x.waiting, x.waiting ? Math.floor(x.longest_wait_secs + add) : 0, x.offered_today,
        x.answered_today, x.abandoned_today, x.service_level_pct])]);
  }
  if (table === 'agents') {
    return lines([['agent', 'state', 'reason', 'secs_in_state', 'queues', 'answered_today'],
      ...s.agents.map((a) => [agentName(a.id), a.state, a.reason, Math.floor(a.secs_in_state + add), a.queues.join(' '), a.answered_today])]);
  }
  return lines([['call_id', 'state', 'queue_or_agent', 'secs'],
    ...s.waiting.map((w) => [w.call_id, w.ringing ? 'ringing' : 'waiting', w.queue, Math.floor(w.waited_secs + add)]),
    ...s.agents.filter((a) => a.state === 'on_call').map((a) => [a.call_id, 'talking', agentName(a.id), Math.floor(a.secs_in_state + add)])]);
}
for (const a of document.querySelectorAll('a.live-csv')) {
  a.addEventListener('click', (ev) => { ev.preventDefault(); save(liveCsv(a.dataset.table), `${a.dataset.table}.csv`); });
}

async function download(path, name) {
  save(await request('GET', path), name);
}

// A CSV download, with the byte-order mark spreadsheets need for UTF-8 (fetch's text() drops
// the server's).
function save(text, name) {
  const body = text.startsWith('\uFEFF') ? text : `\uFEFF${text}`;
  const url = URL.createObjectURL(new Blob([body], { type: 'text/csv;charset=utf-8' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  URL.revokeObjectURL(url);
}

loginSession(app, api, start);
