// mux443 end-to-end test page. Everything here runs in Chromium and reaches the
// backends only through mux443's single port (the one this page was loaded from).
// browser.mjs calls the functions of window.e2e and checks what they return; each
// function also reports on the page itself (#results, #log) for screenshots and
// manual runs.
'use strict';

(function () {
  const logEl = document.getElementById('log');
  const resultsEl = document.getElementById('results');

  function log(...args) {
    const line = args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
    logEl.textContent += line + '\n';
    console.log('[page] ' + line);
  }

  function report(name, ok, detail) {
    const li = document.createElement('li');
    li.className = ok ? 'pass' : 'fail';
    li.textContent = `${ok ? 'PASS' : 'FAIL'} ${name}: ${detail}`;
    resultsEl.appendChild(li);
  }

  // Rejects with `what timed out` after ms.
  function withTimeout(promise, ms, what) {
    let timer;
    const t = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    });
    return Promise.race([promise, t]).finally(() => clearTimeout(timer));
  }

  // (a) WSS: opens url, sends message, resolves with the first reply.
  async function wssEcho(url, message, timeoutMs = 10000) {
    const ws = new WebSocket(url);
    try {
      const reply = await withTimeout(new Promise((resolve, reject) => {
        ws.onopen = () => ws.send(message);
        ws.onmessage = (ev) => resolve(String(ev.data));
        ws.onerror = () => reject(new Error(`WebSocket error on ${url}`));
        ws.onclose = (ev) => reject(new Error(`WebSocket closed (code ${ev.code}) before a reply`));
      }), timeoutMs, `WSS echo on ${url}`);
      log(`wss ${url}: sent "${message}", got "${reply}"`);
      report('wss', true, reply);
      return { ok: true, reply };
    } catch (e) {
      log(`wss ${url}: ${e.message}`);
      report('wss', false, e.message);
      return { ok: false, error: e.message };
    } finally {
      ws.onclose = null;
      ws.close();
    }
  }

  // The local and remote candidates of the pair ICE selected, from getStats().
  async function selectedPair(pc) {
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) { // fallback: the nominated, succeeded pair
      stats.forEach((s) => {
        if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
      });
    }
    if (!pair) return null;
    const pick = (c) => c && {
      candidateType: c.candidateType,
      relayProtocol: c.relayProtocol,
      protocol: c.protocol,
      address: c.address,
      port: c.port,
      url: c.url,
    };
    return {
      state: pair.state,
      nominated: pair.nominated,
      bytesSent: pair.bytesSent,
      bytesReceived: pair.bytesReceived,
      local: pick(stats.get(pair.localCandidateId)),
      remote: pick(stats.get(pair.remoteCandidateId)),
    };
  }

  function waitEvent(target, name, pred = () => true) {
    return new Promise((resolve) => {
      const h = (ev) => {
        if (pred(ev)) {
          target.removeEventListener(name, h);
          resolve(ev);
        }
      };
      target.addEventListener(name, h);
    });
  }

  // (b), (c): two RTCPeerConnections in this page, relay candidates only, both using
  // iceServer `url`; a data channel carries one message each way. Resolves with what
  // each side saw, including getStats' selected candidate pair.
  async function relayCall(url, username, credential, timeoutMs = 30000) {
    const config = { iceServers: [{ urls: url, username, credential }], iceTransportPolicy: 'relay' };
    const pcs = [new RTCPeerConnection(config), new RTCPeerConnection(config)];
    const res = { url, candidates: [[], []], candidateErrors: [], messages: [[], []] };
    pcs.forEach((pc, i) => {
      pc.onicecandidate = (ev) => {
        if (!ev.candidate || !ev.candidate.candidate) return;
        res.candidates[i].push(ev.candidate.candidate);
        pcs[1 - i].addIceCandidate(ev.candidate).catch((e) => log(`addIceCandidate: ${e}`));
      };
      pc.onicecandidateerror = (ev) => {
        res.candidateErrors.push({ pc: i, url: ev.url, errorCode: ev.errorCode, errorText: ev.errorText });
      };
    });
    try {
      const dc1 = pcs[0].createDataChannel('e2e');
      const dc2Promise = waitEvent(pcs[1], 'datachannel').then((ev) => ev.channel);
      const offer = await pcs[0].createOffer();
      await pcs[0].setLocalDescription(offer);
      await pcs[1].setRemoteDescription(offer);
      const answer = await pcs[1].createAnswer();
      await pcs[1].setLocalDescription(answer);
      await pcs[0].setRemoteDescription(answer);

      await withTimeout((async () => {
        const dc2 = await dc2Promise;
        if (dc1.readyState !== 'open') await waitEvent(dc1, 'open');
        if (dc2.readyState !== 'open') await waitEvent(dc2, 'open');
        const got2 = waitEvent(dc2, 'message');
        dc1.send('ping from pc1');
        res.messages[1].push((await got2).data);
        const got1 = waitEvent(dc1, 'message');
        dc2.send('pong from pc2');
        res.messages[0].push((await got1).data);
      })(), timeoutMs, `data channel over ${url}`);
      res.selected = [await selectedPair(pcs[0]), await selectedPair(pcs[1])];
      res.ok = true;
      const l = res.selected[0] && res.selected[0].local;
      log(`relay ${url}: messages ${JSON.stringify(res.messages)}; pc1 local`, l);
      report(url, true, `pc1 local ${l && l.candidateType}/${l && l.relayProtocol}`);
    } catch (e) {
      res.ok = false;
      res.error = e.message;
      res.iceState = pcs.map((pc) => pc.iceConnectionState);
      res.selected = [await selectedPair(pcs[0]), await selectedPair(pcs[1])];
      log(`relay ${url}: ${e.message}`, res);
      report(url, false, e.message);
    } finally {
      pcs.forEach((pc) => pc.close());
    }
    return res;
  }

  // Negative control: one RTCPeerConnection gathers relay candidates on `url`. A TURNS
  // server whose certificate Chromium rejects yields icecandidateerror (701) and no
  // relay candidate. Done when gathering completes, or, since gathering does not
  // always complete (with --allow-loopback-in-peer-connection in a namespace holding
  // only lo it stays "gathering"), once an error came and quietMs passed without any
  // further candidate or error: a bounded observation window, as a negative check
  // needs one.
  async function gatherOnly(url, username, credential, timeoutMs = 20000, quietMs = 1500) {
    const pc = new RTCPeerConnection({ iceServers: [{ urls: url, username, credential }], iceTransportPolicy: 'relay' });
    const res = { url, candidates: [], candidateErrors: [] };
    let settle;
    const settled = new Promise((resolve) => { settle = resolve; });
    let quiet = null;
    const event = () => {
      clearTimeout(quiet);
      if (res.candidateErrors.length) quiet = setTimeout(() => settle('errors, then quiet'), quietMs);
    };
    pc.onicecandidate = (ev) => {
      if (ev.candidate && ev.candidate.candidate) res.candidates.push(ev.candidate.candidate);
      event();
    };
    pc.onicecandidateerror = (ev) => {
      res.candidateErrors.push({ url: ev.url, errorCode: ev.errorCode, errorText: ev.errorText });
      event();
    };
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') settle('complete'); };
    try {
      pc.createDataChannel('gather');
      await pc.setLocalDescription(await pc.createOffer());
      res.end = await withTimeout(settled, timeoutMs, `ICE gathering on ${url}`);
      res.settled = true;
    } catch (e) {
      res.settled = false;
      res.error = e.message;
    } finally {
      clearTimeout(quiet);
      pc.close();
    }
    log(`gather ${url}:`, res);
    report(`gather ${url}`, res.candidates.length === 0, `${res.candidates.length} candidate(s)`);
    return res;
  }

  window.e2e = { wssEcho, relayCall, gatherOnly };

  // Manual run: https://web.test:PORT/?user=U&pass=P
  const q = new URLSearchParams(location.search);
  if (q.get('user')) {
    (async () => {
      const host = location.port ? `${location.hostname}:${location.port}` : location.hostname;
      const turnHost = `${q.get('turn') || 'turn.test'}:${location.port || 443}`;
      await wssEcho(`wss://${host}/ws`, 'hello from the page');
      await relayCall(`turns:${turnHost}?transport=tcp`, q.get('user'), q.get('pass'));
      await relayCall(`turn:${turnHost}?transport=tcp`, q.get('user'), q.get('pass'));
    })();
  }
})();
