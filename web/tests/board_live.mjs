// Drives the supervisors' wall board in Debian's headless Chromium for tests/wall_board.rs:
// logs in as a supervisor (the page registers the supervisor's softphone), then reports on
// stdout, with the wall-clock time in ms, when the board first shows the caller waiting, the
// long-wait alert, and the call answered by an agent ("waiting <ms>", "alert <ms>",
// "talking <ms>"); listens to the call through the browser softphone and reports the
// loudness of the caller's and the agent's tones in what it hears ("levels {...}"); opens the
// KPI and analytics pages and downloads a CSV ("kpi-csv <first line>"). Screenshots go to OUT.
//
// Environment: BASE, SUPERVISOR, PASSWORD, TONE (the fake microphone), OUT, CALLER_HZ,
// AGENT_HZ.
import { env, launch, step } from './common.mjs';

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
  page.on('console', (m) => console.error(`[page] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  await page.goto(`${env.BASE}/board/?rawaudio`);
  await page.fill('input[name=username]', env.SUPERVISOR);
  await page.fill('input[name=password]', env.PASSWORD);
  await page.click('#login-button');
  await page.waitForSelector('#feed[data-state=up]', { timeout: 10000 });
  await page.waitForSelector('#reg[data-state=up]', { timeout: 20000 });
  // The frequent caller is flagged with its masked number; the supervisor routes it.
  await page.waitForSelector('#frequent tr[data-flagged=true][data-caller="139****1111"]', { timeout: 10000 });
  await page.click('#frequent tr[data-caller="139****1111"] button[data-route]');
  await page.waitForSelector('#frequent tr[data-caller="139****1111"] button[data-unroute]', { timeout: 10000 });
  step('frequent-routed');
  step('ready');

  // The board is only fed by the WebSocket: these times are when the page changed.
  await page.waitForSelector('#calls tr[data-state=waiting]', { timeout: 60000 });
  step(`waiting ${Date.now()}`);
  await page.waitForSelector('#alerts .alert[data-kind=long_wait]', { timeout: 20000 });
  step(`alert ${Date.now()}`);
  await page.waitForFunction(() => document.querySelector('#queues tr.late') !== null, null, { timeout: 2000 });
  await page.screenshot({ path: `${env.OUT}/board-alert.png`, fullPage: true });
  await page.waitForSelector('#calls tr[data-state=talking]', { timeout: 30000 });
  step(`talking ${Date.now()}`);
  await page.waitForSelector('#alerts .alert[data-kind=long_wait]', { state: 'detached', timeout: 5000 });
  step('alert-cleared');
  await page.screenshot({ path: `${env.OUT}/board-answered.png`, fullPage: true });

  // Listen through the supervisor's own softphone.
  await page.click('#calls tr[data-state=talking] button[data-monitor=listen]');
  await page.waitForFunction(() => document.getElementById('monitor-status').textContent.includes('connected'), null, { timeout: 15000 });
  step('listening');
  const levels = await page.evaluate(async ([callerHz, agentHz]) => {
    const audio = document.getElementById('remote-audio');
    const ctx = new AudioContext();
    await ctx.resume();
    const src = ctx.createMediaStreamSource(audio.srcObject);
    const an = ctx.createAnalyser();
    an.fftSize = 8192;
    an.smoothingTimeConstant = 0.5;
    src.connect(an);
    await new Promise((r) => setTimeout(r, 2000));
    const data = new Float32Array(an.frequencyBinCount);
    an.getFloatFrequencyData(data);
    const width = ctx.sampleRate / an.fftSize;
    const peak = (hz) => {
      const b = Math.round(hz / width);
      return Math.max(...data.slice(b - 2, b + 3));
    };
    return { caller: peak(callerHz), agent: peak(agentHz), elsewhere: peak(2500) };
  }, [Number(env.CALLER_HZ), Number(env.AGENT_HZ)]);
  step(`levels ${JSON.stringify(levels)}`);
  await page.screenshot({ path: `${env.OUT}/board-listening.png`, fullPage: true });
  // Barge in for three seconds: the page's microphone (TONE) joins the call.
  await page.click('#calls tr[data-state=talking] button[data-monitor=barge]');
  await page.waitForFunction(() => document.getElementById('monitor-status').textContent.startsWith('barge'), null, { timeout: 5000 });
  step('barging');
  await new Promise((r) => setTimeout(r, 3000));
  // Leave; the call goes on without the supervisor until the caller hangs up, and the KPIs
  // count it once it is over.
  await page.click('#calls tr[data-state=talking] button[data-monitor=leave]');
  await page.waitForFunction(() => /Left the call|Monitoring ended/.test(document.getElementById('monitor-status').textContent), null, { timeout: 10000 });
  step('left');
  await page.waitForSelector('#calls tr[data-state=talking]', { state: 'detached', timeout: 40000 });
  // Force the agent into a pause from the board; the feed shows it.
  await page.click('#agents tr button[data-force=pause]');
  await page.waitForSelector('#agents tr[data-state=paused]', { timeout: 5000 });
  step('forced');
  const { readFileSync } = await import('node:fs');
  const [live] = await Promise.all([page.waitForEvent('download'), page.click('a.live-csv[data-table=agents]')]);
  const agentsCsv = readFileSync(await live.path(), 'utf8');
  step(`agents-csv ${JSON.stringify(agentsCsv)}`);
  await new Promise((r) => setTimeout(r, 1000));

  await page.click('button[data-tab=kpis]');
  await page.waitForSelector('#kpi-chart svg .bar', { timeout: 10000 });
  await page.screenshot({ path: `${env.OUT}/board-kpis.png`, fullPage: true });
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#kpi-csv')]);
  const csv = readFileSync(await download.path(), 'utf8').replace(/^\uFEFF/, '');
  const lines = csv.split('\r\n').filter(Boolean);
  step(`kpi-csv ${lines[0]}`);
  step(`kpi-rows ${lines.length - 1}`);

  await page.click('button[data-tab=analytics]');
  await page.waitForSelector('#chart-category svg', { timeout: 10000 });
  await page.waitForSelector('#t-units thead', { timeout: 10000 });
  // The hot topics of the tickets the test filed (indexed a few seconds after filing).
  let terms = [];
  for (let i = 0; i < 20 && terms.length === 0; i += 1) {
    terms = await page.$$eval('#t-topics tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
    if (terms.length === 0) {
      await new Promise((r) => setTimeout(r, 1000));
      await page.click('#an-form button[type=submit]');
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  step(`topics ${JSON.stringify(terms)}`);
  await page.screenshot({ path: `${env.OUT}/board-analytics.png`, fullPage: true });
  step('done');
} finally {
  await browser.close();
}
