#!/usr/bin/env node
// A/B of two builds on the saturated rig (issue 16's means: each change measured against the build before it, in
// one run): the same config (ab.mjs saturatedConfig: key auth, 2 request limits, 1 token limit, metering, access
// log) served by build A (this checkout's dist/, or LEAKY_CLI) and build B (BASE), both proxies up at once, pinned
// to the same core, interleaved rounds. Prints CPU µs/request per case and the ratio A ÷ B (< 1: A is cheaper).
//
//   cp -r dist /tmp/base-dist && <change> && npm run build
//   BASE=/tmp/base-dist/cli/main.js node bench/macro/builds-ab.mjs        (CASES=chat ROUNDS=5 DURATION=3)
// A copy of dist/ outside the checkout must still find node_modules: copy it inside (e.g. ./dist-base, git-ignored
// or removed after) or point BASE at another worktree's dist/cli/main.js.
import { CLI, cliBuilt } from './leaky.mjs'
import { SCENARIOS } from './scenarios.mjs'
import { CHAT_KEY, interleave, makeRig, ratioLine, roundRatios, saturatedConfig, startLeaky, startUwsUpstream, withRig } from './ab.mjs'
import os from 'node:os'
import { machine } from './machine.mjs'
import { writeResults } from '../record.mjs'

const BASE = process.env.BASE
if (BASE === undefined || !cliBuilt()) {
  console.error('usage: BASE=<other build>/cli/main.js node bench/macro/builds-ab.mjs (and `npm run build` here first)')
  process.exit(1)
}
const rig = makeRig('builds', { rounds: 5, duration: 3 })
const auth = { ...SCENARIOS.chat.headers, authorization: `Bearer ${CHAT_KEY}` }
const SCEN = {
  chat: { ...SCENARIOS.chat, headers: auth },
  get: SCENARIOS.get,
  sse: { ...SCENARIOS.sse, headers: auth },
}
const names = (process.env.CASES ?? 'chat').split(',')
await withRig(rig, async () => {
  const up = await startUwsUpstream(rig)
  const yaml = saturatedConfig(up.port, rig.connections)
  const a = await startLeaky(rig, yaml, { cli: CLI, file: 'a.yaml' })
  const b = await startLeaky(rig, yaml, { cli: BASE, file: 'b.yaml' })
  const cases = []
  for (const n of names) {
    cases.push({ name: `${n} A`, url: a.url, pid: a.proc.pid, scenario: SCEN[n] }, { name: `${n} B`, url: b.url, pid: b.proc.pid, scenario: SCEN[n] })
  }
  const t = await interleave(rig, cases)
  const m = machine()
  console.log(`\nA = ${CLI}\nB = ${BASE}\nload average at the end ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}`)
  const result = {}
  for (const n of names) {
    console.log(ratioLine(t[`${n} A`], t[`${n} B`], `${n}: A vs B`))
    result[n] = { a_us: +t[`${n} A`].us.toFixed(2), b_us: +t[`${n} B`].us.toFixed(2), ratio: +(t[`${n} A`].us / t[`${n} B`].us).toFixed(3),
      round_ratios: roundRatios(t[`${n} A`], t[`${n} B`]),
      a_rounds: t[`${n} A`].rounds, b_rounds: t[`${n} B`].rounds }
  }
  writeResults(`builds-ab-${new Date().toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`, {
    date: new Date().toISOString(), command: 'node bench/macro/builds-ab.mjs', label: process.env.LABEL ?? '', machine: m, loadavg_at_end: os.loadavg(),
    settings: { rounds: rig.rounds, duration_s: rig.duration, connections: rig.connections }, result,
  })
})
