// Opens the relay's web app in Debian's headless Chromium with a fake camera and microphone,
// presses Go Live, and reports what the page shows, one JSON object per line on stdout.
//
//   node publish.mjs --url http://127.0.0.1:8080/?stream=cam1 [--seconds 10] [--video clip.y4m]
//                    [--screenshot live.png] [--expect live|message] [--kill-pid PID] [--token T]
//                    [--destination rtmp://… …] [--remove-last-after S] [--audio tone.wav]
//                    [--source camera|screen|overlay] [--corner br] [--size 0.3]
//                    [--switch screen,overlay,camera --switch-every S] [--screenshots DIR]
//
// --destination: added in the page's Destinations list (as "Any RTMP(S) URL") before Go Live.
// --expect live: waits for "live" (and every destination live), stays live --seconds (removing
//   the last destination after --remove-last-after s), takes the screenshot, presses Stop.
// --source: the picture's source, chosen before Go Live (the fake screen is Chromium's green
//   test pattern; --video makes the camera something else).
// --switch: while live, switches to each source in turn every --switch-every s (a screenshot of
//   each in --screenshots).
// --expect reconnect: after live, waits for "reconnecting" and then "live" again (the test
//   stops and restarts the relay meanwhile), stays --seconds, presses Stop.
// --expect meter: clicks the page (audio starts on a gesture), samples the microphone meter for
//   --seconds, and prints its lowest and highest value and any warning.
// --expect message: waits for the page's error message and prints it.
// --expect player: waits for the Watch panel to play and show its delay.
import { chromium } from 'playwright-core';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    seconds: { type: 'string', default: '5' },
    video: { type: 'string' },
    screenshot: { type: 'string' },
    expect: { type: 'string', default: 'live' },
    resolution: { type: 'string', default: '720' },
    'kill-pid': { type: 'string' },
    // Typed into the page's token field, as a person would: the page never reads it from its URL.
    token: { type: 'string' },
    destination: { type: 'string', multiple: true, default: [] },
    'remove-last-after': { type: 'string' },
    audio: { type: 'string' },
    source: { type: 'string' },
    corner: { type: 'string' },
    size: { type: 'string' },
    switch: { type: 'string' },
    'switch-every': { type: 'string', default: '3' },
    screenshots: { type: 'string' },
    // WIDTHxHEIGHT of the page's window, e.g. 390x844 for a phone.
    viewport: { type: 'string', default: '1280x960' },
  },
});

const emit = (event) => console.log(JSON.stringify(event));
const flags = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--no-first-run', '--disable-sync', '--disable-quic',
  '--use-fake-device-for-media-stream=fps=30', '--use-fake-ui-for-media-stream',
  '--auto-select-desktop-capture-source=Entire screen',
];
if (args.video) flags.push(`--use-file-for-fake-video-capture=${args.video}`);
if (args.audio) flags.push(`--use-file-for-fake-audio-capture=${args.audio}`);
let page;
const stateIs = (name, timeout) => page.waitForFunction((n) => document.querySelector('#st-state').textContent === n, name, { timeout });

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: flags });
try {
  const [width, height] = args.viewport.split('x').map(Number);
  page = await browser.newPage({ viewport: { width, height } });
  page.on('console', (m) => process.stderr.write(`[page] ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`[page error] ${e.message}\n`));
  await page.goto(args.url);
  await page.selectOption('#resolution', args.resolution);
  if (args.token !== undefined) await page.fill('#token', args.token);
  await page.waitForFunction(() => document.querySelector('#preview')?.srcObject || !document.querySelector('#message').hidden, null, { timeout: 15000 });
  if (args['kill-pid']) {
    // The relay goes away after serving the page, before Go Live.
    process.kill(Number(args['kill-pid']), 'SIGKILL');
    await page.waitForTimeout(500);
  }
  if (args.expect === 'meter') {
    await page.click('h1'); // a gesture: browsers start audio only after one
    const samples = [];
    const until = Date.now() + Number(args.seconds) * 1000;
    while (Date.now() < until) {
      samples.push(await page.evaluate(() => Number(document.querySelector('#mic-level').value)));
      await page.waitForTimeout(100);
    }
    const warning = await page.evaluate(() => { const w = document.querySelector('#mic-warning'); return w.hidden ? null : w.textContent; });
    // Whether the page fits its window's width (nothing to scroll sideways for).
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: true });
    emit({ event: 'meter', min: Math.min(...samples), max: Math.max(...samples), samples: samples.length, warning, overflow });
    process.exit(0);
  }
  // Chooses a source as a person would: the overlay's corner and size show once it is chosen.
  const choose = async (source) => {
    await page.selectOption('#source', source);
    await page.waitForFunction((s) => document.querySelector('#source').value === s, source, { timeout: 10000 });
    if (source === 'overlay') {
      if (args.corner) await page.selectOption('#overlay-corner', args.corner);
      if (args.size) await page.selectOption('#overlay-size', args.size);
    }
  };
  if (args.source) await choose(args.source);
  if (args.expect === 'player') {
    // The Watch panel: plays the configured HLS stream and shows the delay.
    await page.waitForSelector('#watch:not([hidden])', { timeout: 10000 });
    await page.waitForFunction(() => document.querySelector('#player').currentTime > 1 && /\d s/.test(document.querySelector('#delay').textContent), null, { timeout: 30000 });
    emit({ event: 'player', delay: await page.textContent('#delay'), current_time: await page.evaluate(() => document.querySelector('#player').currentTime) });
    process.exit(0);
  }
  for (const url of args.destination) {
    await page.selectOption('#dest-preset', 'custom');
    await page.fill('#dest-server', url);
    await page.click('#dest-add-button');
  }
  const pressed = Date.now();
  await page.click('#golive');

  if (args.expect === 'message') {
    await page.waitForSelector('#message:not([hidden])', { timeout: 15000 });
    emit({ event: 'message', text: await page.textContent('#message') });
  } else {
    await stateIs('live', 20000);
    const live = Date.now();
    emit({ event: 'live', after_ms: live - pressed });
    if (args.expect === 'reconnect') {
      await stateIs('reconnecting', 30000);
      emit({ event: 'reconnecting', message: await page.textContent('#message') });
      if (args.screenshot) await page.screenshot({ path: args.screenshot.replace(/\.png$/, '-reconnecting.png'), fullPage: true });
      await stateIs('live', 60000);
      emit({ event: 'live-again', reconnects: await page.textContent('#st-reconnects'), at_ms: Date.now() - live });
    }
    for (const source of (args.switch || '').split(',').filter(Boolean)) {
      await page.waitForTimeout(Number(args['switch-every']) * 1000);
      await choose(source);
      await page.waitForTimeout(1500);
      const stillLive = await page.textContent('#st-state');
      emit({ event: 'switched', source, state: stillLive, at_ms: Date.now() - live, message: await page.evaluate(() => document.querySelector('#message').hidden ? null : document.querySelector('#message').textContent) });
      if (args.screenshots) await page.screenshot({ path: `${args.screenshots}/web-app-${source}.png`, fullPage: true });
    }
    const listed = () => page.evaluate(() => [...document.querySelectorAll('#dest-list li')].map((li) => ({
      host: li.querySelector('.host')?.textContent, state: li.querySelector('.dest-state')?.dataset.state, text: li.textContent,
    })));
    await page.waitForFunction(() => [...document.querySelectorAll('#dest-list .dest-state')].every((s) => s.dataset.state === 'live'), null, { timeout: 10000 });
    emit({ event: 'destinations', listed: await listed() });
    if (args['remove-last-after']) {
      await page.waitForTimeout(Number(args['remove-last-after']) * 1000);
      const before = (await listed()).length;
      await page.locator('#dest-list li button').last().click();
      await page.waitForFunction((n) => document.querySelectorAll('#dest-list li').length === n, before - 1, { timeout: 10000 });
      emit({ event: 'removed', listed: await listed(), at_ms: Date.now() - live });
    }
    await page.waitForTimeout(Math.max(0, Number(args.seconds) * 1000 - (Date.now() - live)));
    const shown = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('.stats dd')].map((dd) => [dd.id, dd.textContent])));
    emit({ event: 'stats', shown });
    if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: true });
    await page.click('#stop');
    await page.waitForFunction(() => document.querySelector('#st-state').textContent === 'ended', null, { timeout: 10000 });
    emit({ event: 'stopped', live_ms: Date.now() - live });
  }
} finally {
  await browser.close();
}
