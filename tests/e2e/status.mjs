// The status page in Debian's Chromium (playwright-core, no downloaded browser). Started
// by status.sh with:
//   E2E_ADMIN     mux443's admin listener, HOST:PORT
//   E2E_SHOT      where to write the screenshot
//   E2E_HTTP_N    plain HTTP connections status.sh made (the page must show them)
//   E2E_PROFILE, E2E_OUT, CHROMIUM  as for the other drivers
// Prints `e2e: PASS|FAIL name: detail` per check; exits 0 only when all pass.
import { check, env, metricsAt, runBrowser } from './harness.mjs';

const origin = `http://${env('E2E_ADMIN')}`;
const shot = env('E2E_SHOT');
const httpN = Number(env('E2E_HTTP_N'));

const metrics = () => metricsAt(origin);

await runBrowser({ profile: env('E2E_PROFILE'), out: env('E2E_OUT'), args: [] }, async (context) => {
  const page = context.pages()[0] || (await context.newPage());
  const requests = [];
  page.on('request', (req) => requests.push(req.url()));
  const resp = await page.goto(`${origin}/status`);
  check('page loads', resp.status() === 200, `HTTP ${resp.status()}`);
  // Data shown: wait for a rendering that happened after /metrics was read (nothing
  // moves in between: status.sh sends no traffic now).
  await page.waitForSelector('#class-http .total', { timeout: 10000 });
  const m = await metrics();
  const t0 = Number(await page.evaluate(() => document.body.dataset.now));
  await page.waitForFunction((t) => Number(document.body.dataset.now) > t, t0, { timeout: 10000 });
  const text = (sel) => page.locator(sel).first().innerText();

  const http = Number(await text('#class-http .total'));
  check('http connections', http === m['mux443_connections_total{class="http"}'] && http >= httpN,
    `page ${http}, /metrics ${m['mux443_connections_total{class="http"}']}, made ${httpN}`);
  const https = Number(await text('#class-https .total'));
  check('https connections', https === m['mux443_connections_total{class="https"}'] && https === 2,
    `page ${https}, /metrics ${m['mux443_connections_total{class="https"}']}`);
  const wsOpen = Number(await text('#class-websocket .open'));
  check('websocket open', wsOpen === m['mux443_connections_open{class="websocket"}'] && wsOpen === 2,
    `page ${wsOpen}, /metrics ${m['mux443_connections_open{class="websocket"}']}`);
  const accepted = Number(await text('#accepted'));
  check('accepted', accepted === m.mux443_connections_accepted_total,
    `page ${accepted}, /metrics ${m.mux443_connections_accepted_total}`);
  const route = Number(await text('#route-http .total'));
  const wsRoute = Number(await text('#route-websocket .total'));
  check('websocket route', wsRoute === m['mux443_route_connections_total{route="websocket"}'] && wsRoute === 2,
    `page ${wsRoute}`);
  check('route connections', route === m['mux443_route_connections_total{route="http"}'],
    `page ${route}, /metrics ${m['mux443_route_connections_total{route="http"}']}`);
  const backends = await text('#backends');
  const up = Object.entries(m).find(([k]) => k.startsWith('mux443_backend_server_up{backend="web"'));
  check('server health', up && up[1] === 1 && /\bup\b/.test(backends) && /ok at /.test(backends),
    backends.replace(/\s+/g, ' '));
  const tls = await text('#tls');
  check('certificate', tls.includes('site.test') && /\d+ days/.test(tls), tls.replace(/\s+/g, ' '));
  const ok = Number(await text('#reloads-ok')), failed = Number(await text('#reloads-failed'));
  check('reloads', ok === m['mux443_reloads_total{result="ok"}'] && failed === m['mux443_reloads_total{result="failed"}'] && failed === 1,
    `page ok=${ok} failed=${failed}`);
  const reloads = await text('#reloads');
  check('failed reload shows its first error', /FAILED/.test(reloads) && /bogus_key/.test(reloads),
    reloads.replace(/\s+/g, ' '));
  const fds = await text('#fds');
  check('process figures', /^\d+ of \d+$/.test(fds) && Number(await text('#workers')) === 2, `fds ${fds}`);
  const spark = await page.locator('#class-http svg polyline').count();
  const routeSpark = await page.locator('#route-http svg polyline').count();
  check('sparklines', spark === 1 && routeSpark === 1, `class ${spark}, route ${routeSpark} polyline`);
  const foreign = requests.filter((u) => !u.startsWith(origin + '/'));
  check('same origin only', foreign.length === 0 && requests.some((u) => u === `${origin}/status.json`),
    JSON.stringify(requests.slice(0, 5)));
  await page.screenshot({ path: shot, fullPage: true });
  check('screenshot', true, shot);
});
