// mux443 Janus ICE-TCP test page. janus.mjs calls window.jt.negotiate(), connect()
// and hangup() for each Janus in turn. Everything here reaches Janus only through
// mux443's single port: its HTTP API (signalling) at http://jN.test:PORT/janusN, and
// its ICE-TCP port through the rewritten candidate.
//
// Why jN.test and not the page's own origin: mux443 routes a TCP connection once, by
// its first request. Chromium keeps idle HTTP/1.1 connections per origin and would
// send a /janus2 request down a keep-alive connection that mux443 routed to Janus 1.
// One host name per Janus gives each its own connection pool. The requests are
// "simple" CORS requests (POST with a text/plain body, GET), so no preflight; Janus
// answers Access-Control-Allow-Origin: *.
'use strict';

(function () {
  const logEl = document.getElementById('log');
  function log(...args) {
    const line = args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
    logEl.textContent += line + '\n';
    console.log('[page] ' + line);
  }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  function withTimeout(promise, ms, what) {
    let timer;
    const t = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    });
    return Promise.race([promise, t]).finally(() => clearTimeout(timer));
  }

  let txn = 0;
  const tx = () => `jt${++txn}-${Math.random().toString(36).slice(2, 8)}`;

  // One Janus API request (POST, JSON in a text/plain body: no CORS preflight).
  async function api(url, body) {
    const r = await fetch(url, { method: 'POST', body: JSON.stringify(body), cache: 'no-store' });
    if (!r.ok) throw new Error(`POST ${url} (${body.janus}): HTTP ${r.status}`);
    const j = await r.json();
    if (j.janus === 'error') throw new Error(`POST ${url} (${body.janus}): Janus error ${j.error.code} ${j.error.reason}`);
    return j;
  }

  const sessions = {};

  // Long poll GET /janusN/SESSION until the session is closed; events go to s.events.
  function startPolling(s) {
    s.events = [];
    s.waiters = [];
    (async () => {
      while (!s.closed) {
        try {
          const r = await fetch(`${s.base}/${s.id}?maxev=5&rid=${Date.now()}`, { cache: 'no-store' });
          const j = await r.json();
          for (const ev of Array.isArray(j) ? j : [j]) {
            if (ev.janus === 'keepalive') continue;
            log(`${s.label}: event ${ev.janus}${ev.jsep ? ' +jsep ' + ev.jsep.type : ''}`);
            s.events.push(ev);
            s.waiters = s.waiters.filter((w) => !w(ev));
          }
        } catch (e) {
          if (!s.closed) {
            log(`${s.label}: long poll: ${e.message}`);
            await sleep(250);
          }
        }
      }
    })();
  }

  function waitEvent(s, pred, ms, what) {
    const found = s.events.find(pred);
    if (found) return Promise.resolve(found);
    return withTimeout(new Promise((resolve) => {
      s.waiters.push((ev) => {
        if (!pred(ev)) return false;
        resolve(ev);
        return true;
      });
    }), ms, what);
  }

  let mediaPromise = null;
  // Chromium's fake capture devices (--use-fake-device-for-media-stream): a beep and
  // a test pattern, which the echotest plugin sends straight back.
  function media() {
    if (!mediaPromise) {
      mediaPromise = navigator.mediaDevices.getUserMedia({
        audio: true,
        video: { width: 320, height: 240, frameRate: 15 },
      });
    }
    return mediaPromise;
  }

  // The offer goes to Janus without a single candidate of ours: Janus (ICE-lite) then
  // only ever answers Chromium's checks on its ICE-TCP port, and nothing can go around
  // mux443 (Chromium still gathers locally: it needs a local TCP "active" candidate).
  function stripCandidates(sdp) {
    return sdp.split('\r\n').filter((l) => !l.startsWith('a=candidate:') && l !== 'a=end-of-candidates').join('\r\n');
  }

  async function negotiate(label, base) {
    const s = { label, base, closed: false, dcMessages: [], dcWaiters: [] };
    sessions[label] = s;
    const c = await api(base, { janus: 'create', transaction: tx() });
    s.id = c.data.id;
    startPolling(s);
    const a = await api(`${base}/${s.id}`, { janus: 'attach', plugin: 'janus.plugin.echotest', transaction: tx() });
    s.handle = a.data.id;
    s.hbase = `${base}/${s.id}/${s.handle}`;
    log(`${label}: session ${s.id} handle ${s.handle} via ${base}`);

    const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    s.pc = pc;
    s.localCandidates = [];
    pc.onicecandidate = (ev) => {
      if (ev.candidate && ev.candidate.candidate) s.localCandidates.push(ev.candidate.candidate); // never sent
    };
    pc.oniceconnectionstatechange = () => log(`${label}: iceConnectionState ${pc.iceConnectionState}`);
    const stream = await media();
    for (const t of stream.getTracks()) pc.addTrack(t, stream);
    s.dc = pc.createDataChannel(`mux443-${label}`);
    s.dcOpen = new Promise((resolve) => { s.dc.onopen = resolve; });
    s.dc.onmessage = (ev) => {
      const m = String(ev.data);
      s.dcMessages.push(m);
      s.dcWaiters = s.dcWaiters.filter((w) => !w(m));
    };

    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const offerSdp = stripCandidates(offer.sdp);
    await api(s.hbase, {
      janus: 'message', transaction: tx(), body: { audio: true, video: true },
      jsep: { type: 'offer', sdp: offerSdp, trickle: true },
    });
    const ev = await waitEvent(s, (e) => e.jsep && e.jsep.type === 'answer', 20000, `${label}: Janus's answer`);
    // Trickle nothing but "completed": Janus must know none of our candidates.
    await api(s.hbase, { janus: 'trickle', transaction: tx(), candidate: { completed: true } });
    s.answer = ev.jsep.sdp;
    const ufrag = (/^a=ice-ufrag:(\S+)/m.exec(s.answer) || [])[1] || null;
    const candidates = s.answer.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:'));
    const fingerprint = ((/^a=fingerprint:\S+ (\S+)/m.exec(s.answer) || [])[1] || '').toUpperCase();
    log(`${label}: answer ufrag=${ufrag} candidates=${JSON.stringify(candidates)}`);
    return {
      ok: true, session: s.id, handle: s.handle, ufrag, candidates, fingerprint,
      iceLite: /^a=ice-lite/m.test(s.answer),
      offerCandidates: offerSdp.split('\r\n').filter((l) => l.startsWith('a=candidate:')).length,
      offerHasData: /^m=application /m.test(offerSdp),
    };
  }

  async function pcStats(pc) {
    const report = await pc.getStats();
    const byId = new Map();
    report.forEach((r) => byId.set(r.id, r));
    const cand = (id) => {
      const c = byId.get(id);
      return c && {
        type: c.candidateType, protocol: c.protocol, address: c.address, port: c.port,
        tcpType: c.tcpType, networkType: c.networkType,
      };
    };
    let selected = null;
    const succeeded = [];
    const all = [];
    const inbound = {};
    const outbound = {};
    let remoteFingerprint = null; // the certificate the DTLS peer presented
    report.forEach((r) => {
      if (r.type === 'transport' && r.remoteCertificateId && byId.get(r.remoteCertificateId)) {
        remoteFingerprint = String(byId.get(r.remoteCertificateId).fingerprint).toUpperCase();
      }
      if (r.type === 'transport' && r.selectedCandidatePairId) {
        const p = byId.get(r.selectedCandidatePairId);
        selected = p && { state: p.state, nominated: p.nominated, bytesSent: p.bytesSent,
          bytesReceived: p.bytesReceived, local: cand(p.localCandidateId), remote: cand(p.remoteCandidateId) };
      }
      if (r.type === 'candidate-pair') {
        all.push({ state: r.state, local: cand(r.localCandidateId), remote: cand(r.remoteCandidateId),
          requestsSent: r.requestsSent, responsesReceived: r.responsesReceived });
      }
      if (r.type === 'candidate-pair' && r.state === 'succeeded') {
        succeeded.push({ local: cand(r.localCandidateId), remote: cand(r.remoteCandidateId) });
      }
      if (r.type === 'inbound-rtp') inbound[r.kind] = (inbound[r.kind] || 0) + (r.bytesReceived || 0);
      if (r.type === 'outbound-rtp') outbound[r.kind] = (outbound[r.kind] || 0) + (r.bytesSent || 0);
    });
    return { selected, succeeded, all, inbound, outbound, remoteFingerprint };
  }

  // Only Janus's host candidate of `transport` (tcp: the ICE-TCP passive one; udp) is
  // kept, with mux443's address and port in place of Janus's; every other is dropped.
  function rewriteAnswer(sdp, muxAddr, muxPort, transport) {
    const kept = [];
    const dropped = [];
    const out = sdp.split('\r\n').map((l) => {
      if (!l.startsWith('a=candidate:')) return l;
      const f = l.split(' '); // foundation component transport priority address port typ type ...
      const proto = f[2].toLowerCase();
      if (proto === transport && f[7] === 'host' && (proto === 'udp' || / tcptype passive( |$)/.test(l))) {
        f[4] = muxAddr;
        f[5] = String(muxPort);
        kept.push(f.join(' '));
        return kept[kept.length - 1];
      }
      dropped.push(l);
      return null;
    }).filter((l) => l !== null);
    return { sdp: out.join('\r\n'), kept, dropped };
  }

  async function connect(label, muxAddr, muxPort, transport = 'tcp', timeoutMs = 30000) {
    const s = sessions[label];
    const pc = s.pc;
    const rw = rewriteAnswer(s.answer, muxAddr, muxPort, transport);
    if (!rw.kept.length) throw new Error(`${label}: Janus's answer has no ${transport} host candidate to rewrite`);
    log(`${label}: remote candidates now ${JSON.stringify(rw.kept)}`);
    const t0 = performance.now();
    await pc.setRemoteDescription({ type: 'answer', sdp: rw.sdp });
    // A failure says what Chromium had: its own candidates (never sent) and the pairs.
    const diag = async () => JSON.stringify({ local: s.localCandidates, pairs: (await pcStats(pc)).all });
    await withTimeout(new Promise((resolve, reject) => {
      const check = () => {
        const st = pc.iceConnectionState;
        if (st === 'connected' || st === 'completed') resolve();
        else if (st === 'failed' || st === 'closed') reject(new Error(`${label}: ICE ${st}`));
      };
      pc.addEventListener('iceconnectionstatechange', check);
      check();
    }), timeoutMs, `${label}: ICE connected`).catch(async (e) => {
      throw new Error(`${e.message}; ${await diag()}`);
    });
    const iceMs = Math.round(performance.now() - t0);
    const iceState = pc.iceConnectionState;
    await withTimeout(s.dcOpen, timeoutMs, `${label}: data channel open`);
    const webrtcup = await waitEvent(s, (e) => e.janus === 'webrtcup', 10000, `${label}: Janus webrtcup`);

    // Data: the echotest plugin sends each text message back (with a prefix).
    const msg = `hello ${label} through mux443 ${Date.now()}`;
    const echo = await withTimeout(new Promise((resolve) => {
      const hit = (m) => (m.includes(msg) ? (resolve(m), true) : false);
      if (!s.dcMessages.some(hit)) s.dcWaiters.push(hit);
      s.dc.send(msg);
    }), 10000, `${label}: data channel echo`);

    // Media: the echotest plugin sends our audio and video back; inbound bytes grow.
    let st1 = await pcStats(pc);
    for (let i = 0; i < 100 && !(st1.inbound.audio > 0 && st1.inbound.video > 0); i++) {
      await sleep(100);
      st1 = await pcStats(pc);
    }
    await sleep(2000);
    const st2 = await pcStats(pc);
    log(`${label}: connected in ${iceMs} ms, echo "${echo}", inbound ${JSON.stringify(st1.inbound)} -> ${JSON.stringify(st2.inbound)}`);
    return {
      ok: true, iceState, iceMs, connectionState: pc.connectionState, kept: rw.kept, dropped: rw.dropped,
      localCandidates: s.localCandidates.length, sent: msg, echo, webrtcup: !!webrtcup,
      selected: st2.selected, succeeded: st2.succeeded,
      inbound1: st1.inbound, inbound2: st2.inbound, outbound: st2.outbound,
      remoteFingerprint: st2.remoteFingerprint,
    };
  }

  async function hangup(label) {
    const s = sessions[label];
    if (!s) return { ok: true };
    s.pc.close();
    try {
      await api(s.hbase, { janus: 'detach', transaction: tx() });
      await api(`${s.base}/${s.id}`, { janus: 'destroy', transaction: tx() });
    } finally {
      s.closed = true;
      delete sessions[label];
    }
    return { ok: true };
  }

  // Errors come back as values (playwright would otherwise lose the message's detail).
  const wrap = (fn) => async (...args) => {
    try {
      return await fn(...args);
    } catch (e) {
      log(`error: ${e.message}`);
      return { ok: false, error: e.message };
    }
  };
  window.jt = { negotiate: wrap(negotiate), connect: wrap(connect), hangup: wrap(hangup), log };
})();
