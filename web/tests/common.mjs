// What the browser tests share: Debian's Chromium, headless, with a fake microphone playing
// TONE and nothing reaching out to the network; the agent desktop, logged in and available.
import { chromium } from 'playwright-core';

export const env = process.env;
export const step = (s) => console.log(s);

export async function launch() {
  return chromium.launch({
    executablePath: env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${env.TONE}`,
      '--autoplay-policy=no-user-gesture-required',
      // More from the test, one per line (a host name for the node, the certificate it trusts).
      ...(env.CHROMIUM_ARGS ? env.CHROMIUM_ARGS.split('\n').filter(Boolean) : []),
    ],
  });
}

// What a page at `url` may do with the microphone: whether it is a secure context and
// whether getUserMedia exists there at all.
export async function microphoneAccess(browser, url) {
  const page = await browser.newPage();
  await page.goto(url);
  const access = await page.evaluate(() => ({
    secure: window.isSecureContext,
    microphone: !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia),
  }));
  await page.close();
  return access;
}

export async function availableAgent(browser) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('console', (m) => console.error(`[page] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  await page.goto(`${env.BASE}/agent/?rawaudio`);
  await page.fill('input[name=username]', env.AGENT);
  await page.fill('input[name=password]', env.PASSWORD);
  await page.click('#login-button');
  await page.waitForSelector('#reg[data-state=up]', { timeout: 20000 });
  await page.click('#go-available');
  await page.waitForSelector('#acd[data-state=available]', { timeout: 10000 });
  return page;
}
