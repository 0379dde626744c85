// Drives Debian's Chromium (playwright-core, no downloaded browser) against mux443.
// Started by browser.sh, which sets up the certificates, the NSS database, coturn,
// the backends and mux443, and passes everything through the environment:
//   E2E_PORT        mux443's port (HTTPS, WSS, TURNS, TURN/TCP all on it)
//   E2E_HOME        HOME for Chromium: $E2E_HOME/.pki/nssdb trusts the test CA
//   E2E_PROFILE     a fresh --user-data-dir
//   E2E_OUT         where to write results.json and page.png
//   E2E_CA_CN       common name of the test CA (expected issuer of the page's cert)
//   E2E_TURN_USER, E2E_TURN_PASS   coturn's long-term credentials
//   CHROMIUM        browser binary (default /usr/bin/chromium)
//   E2E_CHROMIUM_ARGS  extra Chromium flags, space-separated (debugging only)
// Prints `e2e: PASS|FAIL name: detail` per check; exits 0 only when all pass.
import { join } from 'node:path';
import { check, env, runBrowser } from './harness.mjs';

const port = env('E2E_PORT');
const home = env('E2E_HOME');
const profile = env('E2E_PROFILE');
const out = env('E2E_OUT');
const caCN = env('E2E_CA_CN');
const user = env('E2E_TURN_USER');
const pass = env('E2E_TURN_PASS');

const origin = `https://web.test:${port}`;

// The selected pair of both peer connections must be relay <-> relay, and our local
// candidate must have been allocated over `proto` (tls for turns:, tcp for turn:).
function checkRelay(name, res, proto) {
  if (!res.ok) {
    check(name, false, res);
    return;
  }
  const msgsOk = res.messages[1][0] === 'ping from pc1' && res.messages[0][0] === 'pong from pc2';
  check(`${name} data channel both ways`, msgsOk, res.messages);
  res.selected.forEach((sel, i) => {
    const l = sel && sel.local;
    const r = sel && sel.remote;
    const ok = l && l.candidateType === 'relay' && l.relayProtocol === proto && r && r.candidateType === 'relay';
    check(`${name} pc${i + 1} selected pair local=relay/${proto} remote=relay`, ok, sel);
  });
}

// Why each flag (beyond harness.mjs's BASE_ARGS):
//   --host-resolver-rules: web.test, turn.test and the negative-control names are
//   127.0.0.1; every other name fails to resolve (~NOTFOUND), so nothing leaves;
//   --allow-loopback-in-peer-connection: browser.sh runs us in a network namespace
//   holding only lo, which WebRTC ignores by default (it would gather nothing).
// There is deliberately NO --ignore-certificate-errors: the HTTPS page and TURNS
// certificates are validated against $HOME/.pki/nssdb (see browser.sh).
const args = [
  '--allow-loopback-in-peer-connection',
  '--host-resolver-rules=MAP web.test 127.0.0.1, MAP turn.test 127.0.0.1, ' +
    'MAP other.test 127.0.0.1, MAP untrusted.test 127.0.0.1, MAP * ~NOTFOUND',
];

await runBrowser({ profile, out, args, childEnv: { ...process.env, HOME: home } }, async (context) => {
  const browserVersion = context.browser() ? context.browser().version() : '?';
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => console.log(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.log(`pageerror: ${e.message}`));
  page.setDefaultTimeout(60000);

  // 1. The page over HTTPS through mux443, certificate validated by Chromium.
  const resp = await page.goto(`${origin}/`, { waitUntil: 'load' });
  const sec = resp ? await resp.securityDetails() : null;
  check('https page', resp && resp.status() === 200 && (await page.title()) === 'mux443 end-to-end test',
    `status=${resp && resp.status()} title="${await page.title()}" chromium=${browserVersion}`);
  check('https certificate issued by the test CA', sec && sec.issuer === caCN && sec.subjectName === 'web.test',
    sec || 'no security details');
  const hasE2e = await page.evaluate(() => typeof window.e2e === 'object');
  check('page script e2e.js loaded over https', hasE2e, `window.e2e ${hasE2e ? 'defined' : 'missing'}`);
  if (!hasE2e) throw new Error('page script missing');

  // 2. (a) WSS echo on the same port.
  const wss = await page.evaluate(([u]) => window.e2e.wssEcho(u, 'hello from chromium'), [`wss://web.test:${port}/ws`]);
  check('wss echo', wss.ok && wss.reply === 'ws:e2e echo=hello from chromium', wss);

  // 3. (b) TURNS: TLS to mux443, which terminates it and finds STUN inside.
  const turns = await page.evaluate(([u, n, p]) => window.e2e.relayCall(u, n, p),
    [`turns:turn.test:${port}?transport=tcp`, user, pass]);
  checkRelay('turns', turns, 'tls');

  // 4. (c) TURN over TCP, no TLS: mux443 recognises STUN in the first bytes.
  const turn = await page.evaluate(([u, n, p]) => window.e2e.relayCall(u, n, p),
    [`turn:turn.test:${port}?transport=tcp`, user, pass]);
  checkRelay('turn-tcp', turn, 'tcp');

  // 5. Negative controls: the TURNS certificate really is validated. other.test is
  //    not in the certificate's names (mux443 serves the default certificate), and
  //    untrusted.test gets a certificate from a CA the NSS database does not hold.
  //    Chromium must refuse both: no relay candidate.
  const [mismatch, untrusted] = await page.evaluate(([p1, p2, n, p]) => Promise.all([
    window.e2e.gatherOnly(p1, n, p), window.e2e.gatherOnly(p2, n, p)]),
  [`turns:other.test:${port}?transport=tcp`, `turns:untrusted.test:${port}?transport=tcp`, user, pass]);
  const refused = (r) => r.settled && r.candidates.length === 0 && r.candidateErrors.length > 0 &&
    r.candidateErrors.every((e) => e.errorCode === 701);
  check('turns refused: certificate name mismatch (other.test)', refused(mismatch), mismatch);
  check('turns refused: certificate from an untrusted CA (untrusted.test)', refused(untrusted), untrusted);

  await page.screenshot({ path: join(out, 'page.png'), fullPage: true });
});
