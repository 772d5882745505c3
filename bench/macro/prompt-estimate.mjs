#!/usr/bin/env node
// Issue 16, mean "no BPE on the hot path": the saturated rig's chat case (key auth, 2 request limits, 1 token limit,
// metering, access log) through two upstreams of one proxy that differ only in prompt_estimate — exact (the o200k
// BPE count before the pre-charge) and bytes (the prompt's UTF-8 byte count, an upper bound; the upstream's reported
// usage replaces it at reconcile) — interleaved rounds, same run. Prints CPU µs/request and the ratio bytes ÷ exact.
//   node bench/macro/prompt-estimate.mjs          (ROUNDS=5 DURATION=3 CONNECTIONS=64; needs wrk)
import os from 'node:os'
import { SCENARIOS } from './scenarios.mjs'
import { CHAT_KEY, interleave, makeRig, ratioLine, roundRatios, saturatedConfig, startLeaky, startUwsUpstream, withRig } from './ab.mjs'
import { machine } from './machine.mjs'
import { writeResults } from '../record.mjs'

const rig = makeRig('prompt-estimate', { rounds: 5, duration: 3 })
await withRig(rig, async () => {
  const up = await startUwsUpstream(rig)
  // the saturated config (its /v1/ route: prompt_estimate exact, the default) plus the same route on a bytes upstream
  const proxy = await startLeaky(rig, saturatedConfig(up.port, rig.connections, {
    upstreams: `  bytes: { provider: openai, targets: ["http://127.0.0.1:${up.port}"], pool: { connections: ${rig.connections} }, prompt_estimate: bytes }\n`,
    routes: '  - { path: /b/, upstream: bytes, auth: key, limits: [key-rps, org-rpm, key-tpm], strip_prefix: true }\n',
  }))
  const chat = { ...SCENARIOS.chat, headers: { ...SCENARIOS.chat.headers, authorization: `Bearer ${CHAT_KEY}` } }
  const t = await interleave(rig, [
    { name: 'exact', url: proxy.url, pid: proxy.proc.pid, scenario: chat },
    { name: 'bytes', url: proxy.url, pid: proxy.proc.pid, scenario: { ...chat, path: '/b' + chat.path } },
  ])
  console.log(`\n${ratioLine(t.bytes, t.exact, '1 KB chat POST, prompt_estimate bytes vs exact')}`)
  console.log(`load average at the end ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}`)
  writeResults(`prompt-estimate-${new Date().toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`, {
    date: new Date().toISOString(), command: 'node bench/macro/prompt-estimate.mjs', machine: machine(), loadavg_at_end: os.loadavg(),
    settings: { rounds: rig.rounds, duration_s: rig.duration, connections: rig.connections },
    result: { exact_us: +t.exact.us.toFixed(2), bytes_us: +t.bytes.us.toFixed(2), ratio: +(t.bytes.us / t.exact.us).toFixed(3),
      round_ratios: roundRatios(t.bytes, t.exact), exact_rounds: t.exact.rounds, bytes_rounds: t.bytes.rounds, exact_rps: t.exact.rps, bytes_rps: t.bytes.rps },
  })
})
