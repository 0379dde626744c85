// Drives Debian's Chromium (playwright-core, no downloaded browser) against two Janus
// servers behind one mux443 port. Started by janus.sh, which builds the network, the
// Janus configurations and mux443's, and passes everything through the environment:
//   E2E_MUX_ADDR, E2E_PORT   mux443's address and its one port (page, signalling, ICE-TCP)
//   E2E_ADMIN                mux443's admin listener, HOST:PORT (/ufrags, /metrics)
//   E2E_JANUS1, E2E_JANUS2   each Janus's ICE endpoint, HOST:PORT, as in [backend media]
//   E2E_TRANSPORT            tcp (default: ICE-TCP) or udp (mux443's UDP listener)
//   E2E_PROFILE              a fresh --user-data-dir
//   E2E_OUT                  where to write results.json and page.png
//   CHROMIUM                 browser binary (default /usr/bin/chromium)
//   E2E_CHROMIUM_ARGS        extra Chromium flags, space-separated (debugging only)
// Two runs, each with both Janus servers in turn:
//   A "registration": Janus's ufrag (from its answer) is POSTed to mux443's /ufrags
//     before Chromium gets the answer; mux443 must route by table hits, no fan-out;
//   B "fanout": nothing registered; mux443 must find each owner by fan-out.
// Prints `e2e: PASS|FAIL name: detail` per check; exits 0 only when all pass.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { check, env, metricsAt, runBrowser } from './harness.mjs';

const muxAddr = env('E2E_MUX_ADDR');
const port = Number(env('E2E_PORT'));
const admin = `http://${env('E2E_ADMIN')}`;
const servers = { 1: env('E2E_JANUS1'), 2: env('E2E_JANUS2') };
const profile = env('E2E_PROFILE');
const out = env('E2E_OUT');
const origin = `http://web.test:${port}`;
const transport = process.env.E2E_TRANSPORT || 'tcp';
const T = transport.toUpperCase();


const metrics = () => metricsAt(admin);
const srvKey = (name, server) => `${name}{backend="media",server="${server}"}`;
function delta(m0, m1) {
  const d = (k) => (m1[k] || 0) - (m0[k] || 0);
  return {
    hits: d('mux443_ufrag_lookups_total{result="hit"}'),
    misses: d('mux443_ufrag_lookups_total{result="miss"}'),
    fanouts: d('mux443_ufrag_fanouts_total'),
    fanoutFailures: d('mux443_ufrag_fanout_failures_total'),
    wins1: d(srvKey('mux443_ufrag_fanout_wins_total', servers[1])),
    wins2: d(srvKey('mux443_ufrag_fanout_wins_total', servers[2])),
    connects1: d(srvKey('mux443_backend_connects_total', servers[1])),
    connects2: d(srvKey('mux443_backend_connects_total', servers[2])),
    connectFailures1: d(srvKey('mux443_backend_connect_failures_total', servers[1])),
    connectFailures2: d(srvKey('mux443_backend_connect_failures_total', servers[2])),
    // ICE connections (TCP) or media-side flows (UDP) mux443 opened
    ice: transport === 'udp' ? d('mux443_udp_flows_total{class="ice-udp"}') : d('mux443_connections_total{class="ice-tcp"}'),
  };
}

async function ufrags() {
  const r = await fetch(`${admin}/ufrags`);
  return r.json();
}

async function register(ufrag, server) {
  const r = await fetch(`${admin}/ufrags`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ ufrag, server }) });
  return { status: r.status, body: (await r.text()).trim() };
}

// Why each flag (beyond harness.mjs's BASE_ARGS):
//   --host-resolver-rules: web.test (the page), j1.test and j2.test (Janus 1 and 2's
//     HTTP API, one host name each, see janus-page/janus.js) are all mux443's address;
//     every other name fails. EXCLUDE: WebRTC's ICE-TCP socket hands its remote
//     candidate's IP to the network service as a host name, which `MAP *` would turn
//     into ERR_NAME_NOT_RESOLVED (-105): no connection at all;
//   --use-fake-ui-for-media-stream --use-fake-device-for-media-stream: getUserMedia
//     gets Chromium's synthetic camera and microphone without a prompt;
//   --unsafely-treat-insecure-origin-as-secure: getUserMedia needs a secure context,
//     and the page is plain http (mux443 terminating TLS is tested by e2e_browser);
//   --disable-features=WebRtcHideLocalIpsWithMdns: plain local IPs in getStats, no
//     mDNS names (our candidates never leave the page anyway).
const args = [
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  `--unsafely-treat-insecure-origin-as-secure=${origin}`,
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  `--host-resolver-rules=MAP web.test ${muxAddr}, MAP j1.test ${muxAddr}, MAP j2.test ${muxAddr}, ` +
    `EXCLUDE ${muxAddr}, MAP * ~NOTFOUND`,
];

// Checks of one connected session (run, Janus n).
// mine, other: the DTLS fingerprints in this Janus's answer and in the other one's.
function checkConnected(tag, r, mine, other) {
  if (!check(`${tag} ICE connected over ${T} through mux443, data + media echoed`, r.ok, r.ok
    ? `ice=${r.iceState} in ${r.iceMs} ms, connection=${r.connectionState}` : r)) return;
  const want = transport === 'udp' ? ` ${muxAddr} ${port} typ host` : ` ${muxAddr} ${port} typ host tcptype passive`;
  check(`${tag} only Janus's ${T} candidate kept, rewritten to mux443`,
    r.kept.length >= 1 && r.kept.every((l) => l.includes(` ${transport} `) && l.includes(want)),
    { kept: r.kept, dropped: r.dropped });
  const sel = r.selected || {};
  const rem = sel.remote || {};
  const loc = sel.local || {};
  check(`${tag} selected pair: remote ${transport} ${muxAddr}:${port}, local ${transport}` +
    (transport === 'tcp' ? ' active' : ''),
    sel.state === 'succeeded' && rem.protocol === transport && rem.address === muxAddr && rem.port === port &&
      loc.protocol === transport && (transport === 'udp' || loc.tcpType === 'active'), sel);
  check(`${tag} every succeeded pair goes to mux443's port over ${T} (nothing around it)`,
    r.succeeded.length >= 1 && r.succeeded.every((p) => p.remote && p.remote.protocol === transport &&
      p.remote.address === muxAddr && p.remote.port === port), r.succeeded);
  check(`${tag} DTLS: the peer's certificate is this Janus's (its answer's fingerprint, not the other's)`,
    mine && r.remoteFingerprint === mine && mine !== other,
    { presented: r.remoteFingerprint, answer: mine, otherJanus: other });
  check(`${tag} data channel echo from the echotest plugin`, typeof r.echo === 'string' && r.echo.includes(r.sent),
    `sent "${r.sent}", got "${r.echo}"`);
  check(`${tag} Janus reported webrtcup (DTLS done)`, r.webrtcup, String(r.webrtcup));
  const grew = (k) => (r.inbound2[k] || 0) > (r.inbound1[k] || 0) && (r.inbound1[k] || 0) > 0;
  check(`${tag} echoed audio and video arrive (inbound-rtp bytes grow)`, grew('audio') && grew('video'),
    { before: r.inbound1, after: r.inbound2, sent: r.outbound });
}

async function run(page, name, doRegister) {
  const m0 = await metrics();
  const neg = {};
  // Both sessions are negotiated first (so that both Janus servers have an ICE-TCP
  // listener with a live agent when Chromium connects: in the fan-out run, the
  // Binding request for one Janus's ufrag really reaches the other, which must refuse it).
  for (const n of [1, 2]) {
    const tag = `${name} janus${n}`;
    const r = await page.evaluate(([l, b]) => window.jt.negotiate(l, b), [`${name}-${n}`, `http://j${n}.test:${port}/janus${n}`]);
    neg[n] = r;
    if (!check(`${tag} session + echotest + offer/answer over Janus's HTTP API through mux443`, r.ok,
      r.ok ? `session=${r.session} ufrag=${r.ufrag}` : r)) return;
    const [host, p] = servers[n].split(':');
    const want = transport === 'udp' ? ` ${host} ${p} typ host` : ` ${host} ${p} typ host tcptype passive`;
    check(`${tag} answer: ice-lite, ufrag, ${T} candidate ${servers[n]}, no candidate of ours in the offer`,
      r.iceLite && r.ufrag && r.offerCandidates === 0 && r.offerHasData &&
        r.candidates.some((c) => new RegExp(` ${transport} `, 'i').test(c) && c.includes(want)),
      { ufrag: r.ufrag, candidates: r.candidates, offerCandidates: r.offerCandidates });
    if (doRegister) {
      const reg = await register(r.ufrag, servers[n]);
      check(`${tag} POST /ufrags ${r.ufrag} -> ${servers[n]}`, reg.status >= 200 && reg.status < 300, reg);
    }
  }
  if (doRegister) {
    const table = await ufrags();
    for (const n of [1, 2]) {
      const e = table.find((x) => x.ufrag === neg[n].ufrag);
      check(`${name} janus${n} GET /ufrags lists ${neg[n].ufrag} -> ${servers[n]} (registered)`,
        e && e.server === servers[n] && e.backend === 'media' && e.source === 'registered', e || table);
    }
  }
  // Then Chromium connects to each in turn.
  for (const n of [1, 2]) {
    const r = await page.evaluate(([l, a, p, t]) => window.jt.connect(l, a, p, t), [`${name}-${n}`, muxAddr, port, transport]);
    checkConnected(`${name} janus${n}`, r, neg[n].fingerprint, neg[3 - n].fingerprint);
  }
  const m1 = await metrics();
  const d = delta(m0, m1);
  const table = await ufrags();
  if (doRegister) {
    check(`${name}: mux443 routed by the registered ufrags (hits >= 2, no fan-out, no miss)`,
      d.hits >= 2 && d.fanouts === 0 && d.misses === 0 && d.wins1 === 0 && d.wins2 === 0, d);
  } else {
    // No connect failure: each fan-out's leg to the other Janus connected too (its
    // live agent got the Binding request for a ufrag it does not own and lost).
    check(`${name}: mux443 found each owner by fan-out (fanouts >= 2, a win for each server, ` +
      'no failure, every leg connected)', d.fanouts >= 2 && d.wins1 >= 1 && d.wins2 >= 1 &&
      d.fanoutFailures === 0 && d.connectFailures1 === 0 && d.connectFailures2 === 0, d);
    for (const n of [1, 2]) {
      const e = table.find((x) => x.ufrag === neg[n].ufrag);
      check(`${name} janus${n} GET /ufrags: ${neg[n].ufrag} learnt -> ${servers[n]}`,
        e && e.server === servers[n] && e.source === 'fanout', e || table);
    }
  }
  check(`${name}: ICE-${T} ${transport === 'udp' ? 'flows' : 'connections'} reached both Janus servers`,
    d.ice >= 2 && d.connects1 >= 1 && d.connects2 >= 1, d);
  for (const n of [1, 2]) {
    const h = await page.evaluate((l) => window.jt.hangup(l), `${name}-${n}`);
    check(`${name} janus${n} hangup (detach + destroy)`, h.ok, h);
  }
}

// Each Janus has a one-port range (its ICE-TCP port): a new PeerConnection fails with
// "Error setting ICE locally" (490) while a socket of the previous one still holds the
// port; Janus frees the agent asynchronously after detach. Wait (up to 20 s) until no
// socket (TCP in any state, UDP) in our namespace has either Janus's ICE address:port.
async function waitIcePortsFree() {
  const deadline = Date.now() + 20000;
  let busy = [];
  for (;;) {
    busy = execFileSync('ss', ['-Htuan'], { encoding: 'utf8' }).split('\n')
      .filter((l) => { const f = l.trim().split(/\s+/); return f[4] === servers[1] || f[4] === servers[2]; });
    if (!busy.length || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return busy;
}

await runBrowser({ profile, out, args }, async (context) => {
  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => console.log(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.log(`pageerror: ${e.message}`));
  page.setDefaultTimeout(90000);
  const resp = await page.goto(`${origin}/`, { waitUntil: 'load' });
  const ok = resp && resp.status() === 200 && (await page.evaluate(() => typeof window.jt === 'object'));
  check('page and janus.js through mux443', ok, `status=${resp && resp.status()} chromium=${context.browser() ? context.browser().version() : '?'}`);
  if (ok) {
    await run(page, 'A-registration', true);
    const t0 = Date.now();
    const busy = await waitIcePortsFree();
    check('both Janus ICE ports free again after hangup', !busy.length, busy.length ? busy : `${Date.now() - t0} ms`);
    await run(page, 'B-fanout', false);
  }
  await page.screenshot({ path: join(out, 'page.png'), fullPage: true }).catch(() => {});
});
