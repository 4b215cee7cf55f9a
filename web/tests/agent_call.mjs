// Drives the agent desktop in Debian's headless Chromium for tests/agent_desktop.rs: logs in,
// goes available, answers the call that rings, files the ticket. Talks to the Rust test on
// stdout, one line per step ("ready", "ringing", "in-call", "ticket <number>"), and reads
// nothing: the test places the call once it sees "ready".
//
// Environment: BASE (http://127.0.0.1:port or https://name:port), AGENT and PASSWORD, TONE (a WAV the fake
// microphone plays), OUT (where screenshots go), CATEGORY, DESCRIPTION.
// With PLAIN_ORIGIN (a host name the browser maps to loopback, not a loopback name), the same
// page is first served over plain HTTP at that name and the test told what it may do there
// ("plain {...}"); then what it may do over the node's HTTPS ("secure {...}").
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { availableAgent, env, launch, microphoneAccess, step } from './common.mjs';

const browser = await launch();
try {
  if (env.PLAIN_ORIGIN) {
    const html = readFileSync('dist/agent/index.html');
    const plain = createServer((_, res) => res.end(html));
    await new Promise((ok) => plain.listen(0, '127.0.0.1', ok));
    const url = `http://${env.PLAIN_ORIGIN}:${plain.address().port}/agent/`;
    step(`plain ${JSON.stringify(await microphoneAccess(browser, url))}`);
    plain.close();
    step(`secure ${JSON.stringify(await microphoneAccess(browser, `${env.BASE}/agent/`))}`);
  }
  const page = await availableAgent(browser);
  step('ready');

  await page.waitForSelector('#call-panel[data-state=ringing]', { timeout: 60000 });
  // What the IVR learnt shows while it rings.
  await page.waitForFunction(() => document.getElementById('queue').textContent !== '-', null, { timeout: 10000 });
  await page.screenshot({ path: `${env.OUT}/agent-ringing.png`, fullPage: true });
  step('ringing');
  const facts = await page.evaluate(() => ({
    caller: document.getElementById('caller').textContent,
    queue: document.getElementById('queue').textContent,
    path: document.getElementById('ivr-path').textContent,
  }));
  step(`facts ${JSON.stringify(facts)}`);
  await page.click('#answer');
  await page.waitForSelector('#call-panel[data-state=in-call]', { timeout: 10000 });
  step('in-call');
  // The call's links come from the API once the ACD names the call.
  await page.waitForFunction(() => document.getElementById('recording-link').textContent !== '-', null, { timeout: 10000 });
  await page.waitForTimeout(2000);
  const stats = await page.evaluate(async () => {
    const pc = window.hotline.session.connection;
    const out = { received: 0, sent: 0 };
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'audio') out.received += r.packetsReceived;
      if (r.type === 'outbound-rtp' && r.kind === 'audio') out.sent += r.packetsSent;
    });
    return out;
  });
  step(`stats ${JSON.stringify(stats)}`);
  await page.screenshot({ path: `${env.OUT}/agent-in-call.png`, fullPage: true });

  await page.selectOption('#category', env.CATEGORY);
  await page.fill('textarea[name=description]', env.DESCRIPTION);
  await page.fill('input[name=district]', '槐荫区');
  await page.click('#submit-ticket');
  await page.waitForFunction(() => document.getElementById('ticket-result').dataset.number, null, { timeout: 10000 });
  const number = await page.$eval('#ticket-result', (e) => e.dataset.number);
  const code = await page.$eval('#ticket-result', (e) => e.dataset.accessCode);
  const shown = await page.$eval('#ticket-result', (e) => e.textContent);
  step(`ticket ${number} code ${shown.includes(`查询码 ${code}`) ? code : 'not-shown'}`);
  await page.screenshot({ path: `${env.OUT}/agent-ticket.png`, fullPage: true });
  // Hold for 2 s (the caller hears music, the agent's audio stops), then back.
  await page.click('#hold');
  await page.waitForFunction(() => document.getElementById('hold').textContent === 'Resume', null, { timeout: 5000 });
  step('held');
  await page.waitForTimeout(2000);
  await page.click('#hold');
  await page.waitForFunction(() => document.getElementById('hold').textContent === 'Hold', null, { timeout: 5000 });
  step('resumed');
  // Stay until the caller hangs up.
  await page.waitForSelector('#call-panel[data-state=idle]', { timeout: 60000 });
  step('ended');
} finally {
  await browser.close();
}
