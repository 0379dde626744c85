// What the browser drivers share: reading their environment, the `e2e: PASS|FAIL`
// reporting the shell drivers grep for, and running Debian's Chromium through
// playwright-core (executablePath, never a downloaded browser).
import { writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { chromium } from 'playwright-core';

export function env(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${basename(process.argv[1])}: ${name} is not set`);
    process.exit(2);
  }
  return v;
}

const results = [];
let failed = 0;

// Records one check; prints it at once so a hung run still shows how far it got.
export function check(name, ok, detail) {
  results.push({ name, ok: !!ok, detail });
  if (!ok) failed++;
  console.log(`e2e: ${ok ? 'PASS' : 'FAIL'} ${name}: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`);
  return !!ok;
}

// Flags every run needs: headless, as root in a container without a display or GPU;
// no QUIC (only TCP goes through mux443); and nothing but the test's own traffic (no
// first-run, background, component or sync connections: the network is closed).
const BASE_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

// Runs body(context) in a fresh persistent Chromium context (profile: --user-data-dir;
// args: the test's own Chromium flags, after BASE_ARGS; childEnv: Chromium's
// environment, default ours). An exception
// is a failed check. Writes out/results.json, prints the summary line and exits: 0 only
// when every check passed.
export async function runBrowser({ profile, out, args, childEnv }, body) {
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: [...BASE_ARGS, ...args, ...(process.env.E2E_CHROMIUM_ARGS || '').split(/\s+/).filter(Boolean)],
      env: childEnv || process.env,
      ignoreHTTPSErrors: false,
      timeout: 60000,
    });
    await body(context);
  } catch (e) {
    check('browser run', false, e.stack || String(e));
  } finally {
    writeFileSync(join(out, 'results.json'), JSON.stringify(results, null, 2) + '\n');
    if (context) await context.close().catch(() => {});
  }
  console.log(`e2e: ${results.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

// mux443's /metrics at origin (http://HOST:PORT) as { 'name{labels}': number }.
export async function metricsAt(origin) {
  const r = await fetch(`${origin}/metrics`);
  const m = {};
  for (const line of (await r.text()).split('\n')) {
    const mm = /^([a-zA-Z0-9_:]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (mm) m[mm[1]] = Number(mm[2]);
  }
  return m;
}
