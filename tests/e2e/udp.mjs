// Chromium over TURN/UDP through mux443's UDP port (udp.sh sets up coturn and mux443).
//   E2E_PAGE        the test page (page/), served directly on 127.0.0.1
//   E2E_TURN_URL    turn:ADDRESS:PORT?transport=udp, mux443's UDP listener
//   E2E_TURN_USER, E2E_TURN_PASS   coturn's long-term credentials
//   E2E_PROFILE, E2E_OUT           as browser.mjs
// Prints `e2e: PASS|FAIL name: detail` per check; exits 0 only when all pass.
import { check, env, runBrowser } from './harness.mjs';

const pageUrl = env('E2E_PAGE');
const turnUrl = env('E2E_TURN_URL');
const user = env('E2E_TURN_USER');
const pass = env('E2E_TURN_PASS');

// --allow-loopback-in-peer-connection: the namespace holds only lo, which WebRTC
// ignores by default. --host-resolver-rules: no name resolves, but `MAP *` also catches
// IP literals (the page's and the TURN server's), hence EXCLUDE 127.0.0.1 before it.
const args = ['--allow-loopback-in-peer-connection', '--host-resolver-rules=EXCLUDE 127.0.0.1, MAP * ~NOTFOUND'];

await runBrowser({ profile: env('E2E_PROFILE'), out: env('E2E_OUT'), args }, async (context) => {
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => console.log(`console.${m.type()}: ${m.text()}`));
  page.setDefaultTimeout(60000);
  await page.goto(pageUrl, { waitUntil: 'load' });
  const res = await page.evaluate(([u, n, p]) => window.e2e.relayCall(u, n, p), [turnUrl, user, pass]);
  if (!check('turn-udp call', res.ok, res)) return;
  check('turn-udp data channel both ways',
    res.messages[1][0] === 'ping from pc1' && res.messages[0][0] === 'pong from pc2', res.messages);
  res.selected.forEach((sel, i) => {
    const l = sel && sel.local;
    const r = sel && sel.remote;
    check(`turn-udp pc${i + 1} selected pair local=relay/udp remote=relay`,
      l && l.candidateType === 'relay' && l.relayProtocol === 'udp' && r && r.candidateType === 'relay', sel);
  });
});
