#!/usr/bin/env node
// The `leaky` command. Every failure a user can cause here (bad flag, missing file, invalid config, port in use)
// is one clear line on stderr and a non-zero exit, never a stack trace.
import { Command, CommanderError } from 'commander'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { createHash } from 'node:crypto'
import { loadConfigFile, formatIssue, DEFAULT_CONFIG_PATH, type Config } from '../config/index.js'
import { Master, StartError } from '../supervisor/master.js'
import { chooseUws, describeChoice, refusal } from '../server/uws-choice.js'
import type { UsageOptions } from './usage.js'
import { locateMaster, reloadTarget, statusTarget, stopCommand, upgradeCommand, type TargetOptions } from '../supervisor/commands.js'
import { EXIT } from '../errors.js'

const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string }

function fail(message: string, code: number = EXIT.FAILED): never {
  process.stderr.write(`leaky: ${message}\n`)
  process.exit(code)
}

function load(file: string): Config {
  const r = loadConfigFile(file)
  if (!r.ok) {
    for (const i of r.issues) process.stderr.write(`${formatIssue(i)}\n`)
    fail(`${r.issues.length} error${r.issues.length === 1 ? '' : 's'} in ${file}`)
  }
  return r.config
}

const program = new Command()
program.name('leaky').description('Reverse proxy for LLM APIs with request and token budgets').version(`${pkg.version} (${describeChoice(chooseUws())})`, '-v, --version')
program.exitOverride()
program.configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `leaky: ${s}` : s) })

program
  .command('start')
  .description('start the proxy (config: -c FILE, or $LEAKY_CONFIG, or the shipped default); runs the master process')
  .option('-c, --config <file>', 'config file')
  .option('--watch', 'reload when the config file changes')
  .action(async (opts: { config?: string; watch?: boolean }) => {
    const file = opts.config ?? process.env.LEAKY_CONFIG ?? DEFAULT_CONFIG_PATH
    const config = load(file)
    // before the pid file and any generation: on a runtime no uWS build serves, say which ones would
    const uws = chooseUws()
    if (uws.problem !== null) fail(refusal(uws))
    const master = new Master({ configFile: file, config, version: pkg.version, watch: opts.watch === true, testHooks: process.env.LEAKY_TEST_HOOKS === '1' })
    try {
      await master.start()
    } catch (err) {
      master.flush()
      if (err instanceof StartError) for (const e of err.errors) process.stderr.write(`${e}\n`)
      fail((err as Error).message)
    }
  })

/**
 * Options shared by the commands that talk to a running master. With none of them (and no $LEAKY_CONFIG) the command
 * acts on the only master running, and lists them when there are several.
 */
function targeted(name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .option('-c, --config <file>', 'the master of this config file (its pid_file, else its listen address; read even when the file is invalid)')
    .option('--pid-file <file>', 'the master\'s pid file (default: leaky-HOST-PORT.pid in $LEAKY_RUNTIME_DIR, $RUNTIME_DIRECTORY, /run/leaky or $TMPDIR/leaky-UID)')
    .option('--pid <pid>', 'the master\'s pid')
}

targeted('reload', 'validate the config file and apply it in place (exit 1 and print the errors when invalid)')
  .action(async (opts: TargetOptions) => process.exit(await reloadTarget(opts)))
targeted('upgrade', 'zero-downtime upgrade: a new generation runs the code now on disk, the old one drains')
  .action(async (opts: TargetOptions) => process.exit(await upgradeCommand(await locateMaster(opts))))
targeted('stop', 'graceful stop: drain (up to drain_timeout), write the state file, exit')
  .option('--timeout <seconds>', 'how long to wait for the master to exit', '120')
  .action(async (opts: TargetOptions & { timeout: string }) => process.exit(await stopCommand(await locateMaster(opts), Number(opts.timeout) * 1000)))
targeted('status', 'every running master, one line each; for one: generation, uptime, workers, in-flight, requests, reloads, buckets')
  .option('--json', 'print JSON (one master)')
  .action(async (opts: TargetOptions & { json?: boolean }) => process.exit(await statusTarget(opts)))

program
  .command('validate')
  .description('check a config file; lists every error with file:line:column')
  .requiredOption('-c, --config <file>', 'config file')
  .action((opts: { config: string }) => {
    load(opts.config)
    process.stdout.write(`${opts.config}: ok\n`)
  })

program
  .command('stub')
  .description('run the stub LLM upstream on its own (OpenAI, Gemini, Qwen shapes)')
  .option('-p, --port <port>', 'port', '8081')
  .option('--host <host>', 'address to bind', '127.0.0.1')
  .option('--provider <name>', 'openai | gemini | qwen | anthropic | all', 'all')
  .option('--seed <n>', 'seed for deterministic output', '1')
  .option('--ttft <ms>', 'time to first token in ms', '0')
  .option('--tps <n>', 'tokens per second when streaming (0 = unpaced)', '0')
  .action(async (opts: { port: string; host: string; provider: string; seed: string; ttft: string; tps: string }) => {
    const port = Number(opts.port)
    if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port: not a port number: ${opts.port}`)
    if (!['openai', 'gemini', 'qwen', 'all'].includes(opts.provider)) fail(`--provider: expected openai, gemini, qwen or all, got "${opts.provider}"`)
    const { runStub } = await import('../stub/cli.js')
    await runStub({ port, host: opts.host, provider: opts.provider as 'all', seed: Number(opts.seed), ttftMs: Number(opts.ttft), tokensPerSecond: Number(opts.tps) })
  })

const key = program.command('key').description('virtual key tools')
key
  .command('hash')
  .description('print the sha256 line to paste into a keys: entry (reads the key from the argument or stdin)')
  .argument('[key]', 'the key; omit to read it from stdin (keeps it out of shell history)')
  .action((k?: string) => {
    const value = (k ?? readFileSync(0, 'utf8')).trim()
    if (value === '') fail('no key given')
    process.stdout.write(`sha256: ${createHash('sha256').update(value).digest('hex')}\n`)
  })

// the key store (better-sqlite3), the ledger reports (pg) and the stub load only for their commands: `leaky start`'s
// master stays small (it runs for the proxy's whole life)
const keys = () => import('./keys.js')
const OUT = { stdout: (s: string) => process.stdout.write(s), stderr: (s: string) => process.stderr.write(s) }
/** The config whose key store a `leaky key` command uses: -c, else $LEAKY_CONFIG, else the shipped default. */
const storeConfig = (file?: string): Config => load(file ?? process.env.LEAKY_CONFIG ?? DEFAULT_CONFIG_PATH)

key
  .command('create')
  .description('make a runtime key and print its secret once (only its sha256 is stored); a running proxy serves it within a second')
  .requiredOption('--id <id>', 'key id (letters, digits, "_", "." and "-")')
  .option('--org <org>', 'organisation (per: org limits)')
  .option('--tier <tier>', 'a tier of the config')
  .option('--expires <duration>', 'lifetime, e.g. 30d, 12h')
  .option('--models <a,b>', 'allowed models (others: 403)')
  .option('--routes <prefixes>', 'allowed path prefixes, comma-separated (others: 403)')
  .option('-c, --config <file>', 'config file (its key_store or state_file says where the keys are)')
  .option('--json', 'print JSON')
  .action(async (o: { id: string; org?: string; tier?: string; expires?: string; models?: string; routes?: string; config?: string; json?: boolean }) =>
    process.exit((await keys()).keyCreate(storeConfig(o.config), o, OUT)))
key
  .command('list')
  .description('every key: runtime keys and the config file\'s (read-only); never a secret')
  .option('-c, --config <file>', 'config file')
  .option('--json', 'print JSON')
  .action(async (o: { config?: string; json?: boolean }) => process.exit((await keys()).keyList(storeConfig(o.config), o.json === true, OUT)))
key
  .command('revoke')
  .description('revoke a runtime key: refused by a running proxy within a second')
  .argument('<id>', 'key id')
  .option('-c, --config <file>', 'config file')
  .option('--json', 'print JSON')
  .action(async (id: string, o: { config?: string; json?: boolean }) => process.exit((await keys()).keyRevoke(storeConfig(o.config), id, o.json === true, OUT)))
key
  .command('rotate')
  .description('new secret for a runtime key, printed once; the old one is accepted for --grace')
  .argument('<id>', 'key id')
  .option('--grace <duration>', 'how long the old secret stays valid, e.g. 1h (default: not at all)')
  .option('-c, --config <file>', 'config file')
  .option('--json', 'print JSON')
  .action(async (id: string, o: { config?: string; grace?: string; json?: boolean }) => process.exit((await keys()).keyRotate(storeConfig(o.config), id, o.grace, o.json === true, OUT)))

program
  .command('usage')
  .description('usage and cost from the ledger, grouped by key, org, model, route, status, day or month')
  .option('--by <dimension>', 'key, org, model, route, status, day or month', 'key')
  .option('--since <when>', 'start: a duration back (7d, 12h), a date (2026-12-01) or an ISO date-time', '7d')
  .option('--until <when>', 'end (exclusive), same forms; default now')
  .option('--format <format>', 'table, csv or json', 'table')
  .option('--from <store>', 'sqlite (this proxy\'s ledger file) or postgres (the fleet\'s, ledger.postgres.url)', 'sqlite')
  .option('-c, --config <file>', 'config file (its ledger or state_file says where the ledger is)')
  .action(async (o: UsageOptions & { config?: string }) => {
    const { usageCommand } = await import('./usage.js')
    process.exit(await usageCommand(storeConfig(o.config), o, OUT))
  })

try {
  await program.parseAsync(process.argv)
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode)
  fail((err as Error).message)
}
