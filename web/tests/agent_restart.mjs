// The agent desktop across a server restart, for tests/agent_desktop.rs: logged in and
// available ("ready"); the test kills and restarts the server; the page notices ("lost"),
// reconnects, re-registers and puts the agent back to available by itself ("recovered");
// then a call rings and is answered as before ("ringing", "in-call", "ended").
import { availableAgent, env, launch, step } from './common.mjs';

const browser = await launch();
try {
  const page = await availableAgent(browser);
  step('ready');
  await page.waitForSelector('#reg[data-state=down]', { timeout: 30000 });
  step('lost');
  await page.screenshot({ path: `${env.OUT}/agent-reconnecting.png`, fullPage: true });
  await page.waitForSelector('#reg[data-state=up]', { timeout: 45000 });
  await page.waitForSelector('#acd[data-state=available]', { timeout: 15000 });
  step('recovered');
  await page.screenshot({ path: `${env.OUT}/agent-recovered.png`, fullPage: true });
  await page.waitForSelector('#call-panel[data-state=ringing]', { timeout: 60000 });
  step('ringing');
  await page.click('#answer');
  await page.waitForSelector('#call-panel[data-state=in-call]', { timeout: 10000 });
  step('in-call');
  await page.waitForSelector('#call-panel[data-state=idle]', { timeout: 60000 });
  step('ended');
} finally {
  await browser.close();
}
