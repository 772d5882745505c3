// TLS termination on the proxy listener (uWS SSLApp) with real certificates made by openssl: clients through undici,
// node:tls, curl and `openssl s_client`; a plain listener beside it; client certificates verified against a CA;
// hostile bytes on the TLS port; and certificates replaced by reload (open connections keep going, a bad file
// keeps the running certificate and is named) and by a file change under `watch`.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { copyFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'
import { Agent, Client, request } from 'undici'
import { makeCerts, read, serialOf } from '../helpers/certs.js'
import { freePort, startProxy } from '../helpers/proxy.js'
import { masterConfig, restartMaster, tempDir } from '../fixtures/supervisor/master.js'
import { chooseUws } from '../../src/server/uws-choice.js'

// the uWS build this Node runs (src/server/uws-choice.ts): its idle timer bounds a stalled handshake
const UWS_VERSION = chooseUws().version ?? ''
const STALL_BOUND_MS = /^20\.(5[7-9]|[6-9]\d)\./.test(UWS_VERSION) ? 45_000 : 20_000

const certs = makeCerts()
// the files the proxy is configured with: tests overwrite them to rotate
const live = { cert: `${certs.dir}/live.crt`, key: `${certs.dir}/live.key` }
copyFileSync(certs.server.cert, live.cert)
copyFileSync(certs.server.key, live.key)
const plainPort = await freePort()

const UP = `upstreams:
  stub: { provider: openai, targets: [embedded] }
routes:
  - { path: /v1/, upstream: stub }
`
// one worker: the machine running the suite is often loaded, and a start has 20 s to report ready
const dir = tempDir()
writeFileSync(`${dir}/leaky.yaml`, masterConfig(dir, `listen_plain: 127.0.0.1:${plainPort}
tls: { cert: ${live.cert}, key: ${live.key}, client_ca: ${certs.ca} }
${UP}`).replace('workers: 2', 'workers: 1'))
const m = await restartMaster(dir)
t.teardown(() => m.proxy.stop())
const port = m.proxy.port

const trusting = new Agent({ connect: { ca: read(certs.ca) } })
t.teardown(() => trusting.close())

/** The certificate serial a new TLS connection to the proxy is shown (connection closed again). */
async function servedSerial(opts: tls.ConnectionOptions = {}): Promise<string> {
  const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: read(certs.ca), ...opts })
  await once(s, 'secureConnect')
  const serial = s.getPeerCertificate().serialNumber.toUpperCase()
  s.destroy()
  return serial
}

/** Open a TLS connection; resolves with how it ended: 'connected' or the error code of a refused handshake. */
function handshake(opts: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: read(certs.ca), ...opts })
    // TLS 1.3: the server's verdict on a client certificate arrives after the client's handshake is done, so
    // send a request and see whether an answer or an alert comes back
    s.once('secureConnect', () => s.write('GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n'))
    s.once('data', () => {
      s.destroy()
      resolve('connected')
    })
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
    s.once('close', () => resolve('closed'))
  })
}

t.test('HTTPS through undici, curl and openssl s_client; the plain listener serves the same routes', async (t) => {
  const loaded = await m.waitLog((l) => l.msg === 'TLS certificate loaded')
  t.match(loaded, { cert: live.cert, serial: serialOf(certs.server.cert) })
  t.equal(loaded.level, 'info')
  t.ok((loaded.days_left as number) >= 28, `with its expiry (${String(loaded.days_left)} days left)`)
  const r = await request(`https://localhost:${port}/v1/models`, { dispatcher: trusting })
  t.equal(r.statusCode, 200)
  t.equal(((await r.body.json()) as { object: string }).object, 'list')
  const line = await m.waitLog((l) => l.msg === 'access' && l.path === '/v1/models')
  t.equal(line.status, 200)

  const curl = spawnSync('curl', ['-sS', '--cacert', certs.ca, `https://localhost:${port}/v1/models`], { encoding: 'utf8' })
  t.equal(curl.status, 0, curl.stderr)
  t.match(curl.stdout, /"object":"list"/)

  const s = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', certs.ca, '-brief', '-ign_eof'],
    { input: 'GET /v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', encoding: 'utf8', timeout: 10_000 })
  t.match(s.stderr, /Verification: OK/, 'the chain verifies against the test CA')
  t.match(s.stderr, /Protocol version: TLSv1\.3/)
  t.match(s.stdout, /HTTP\/1\.1 200 OK/)

  const tls11 = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_1', '-brief'], { input: '', encoding: 'utf8', timeout: 10_000 })
  t.not(tls11.status, 0, 'TLS 1.1 is refused (min_version TLSv1.2)')

  const plain = await request(`http://127.0.0.1:${plainPort}/v1/models`)
  t.equal(plain.statusCode, 200, 'listen_plain')
  await plain.body.text()
})

t.test('client_ca: a client certificate from the CA or none is let in; one the CA did not sign is refused in the handshake', async (t) => {
  t.equal(await handshake({ cert: read(certs.client.cert), key: read(certs.client.key) }), 'connected', 'CA-signed client certificate')
  t.equal(await handshake({}), 'connected', 'no client certificate (client_cert: optional)')
  const rogue = await handshake({ cert: read(certs.rogue.cert), key: read(certs.rogue.key) })
  t.match(rogue, /ERR_SSL_TLSV1_ALERT_UNKNOWN_CA|ECONNRESET|closed/, `self-signed client certificate refused (${rogue})`)
  const r = await request(`https://localhost:${port}/v1/models`, { dispatcher: trusting })
  t.equal(r.statusCode, 200, 'others unaffected')
  await r.body.text()
})

t.test('hostile bytes on the TLS port: plain HTTP, garbage, a stalled handshake → closed; other clients unaffected', async (t) => {
  const exchange = async (bytes: Buffer | string) => {
    const s = net.connect(port, '127.0.0.1')
    await once(s, 'connect')
    let got = ''
    s.on('data', (d: Buffer) => (got += d.toString('latin1')))
    s.on('error', () => undefined)
    s.write(bytes)
    await once(s, 'close')
    return got
  }
  const plain = await exchange('GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n')
  t.notMatch(plain, /HTTP\/1\.1 200/, 'a plain HTTP request on the TLS port is never served')
  const garbage = await exchange(Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919 + 13) % 256)))
  t.notMatch(garbage, /HTTP/, 'garbage: closed')

  // a TLS record header and then nothing: the handshake never completes; uWS's idle timer closes it — 20.30 (Node 20)
  // after 8–12 s, 20.57 (Node 22/24) after ~30 s (measured 30.6 and 31.1 s in the Node 24 chroot)
  const stalled = net.connect(port, '127.0.0.1')
  await once(stalled, 'connect')
  stalled.on('error', () => undefined)
  stalled.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xf0]))
  const started = Date.now()
  const closed = once(stalled, 'close')
  // meanwhile other clients are served, on new connections and over the plain listener
  for (let i = 0; i < 5; i++) {
    const r = await request(`https://localhost:${port}/v1/models`, { dispatcher: trusting, reset: true })
    t.equal(r.statusCode, 200)
    await r.body.text()
  }
  await closed
  const waited = Date.now() - started
  t.ok(waited < STALL_BOUND_MS, `stalled handshake closed by the server after ${waited} ms (bound ${STALL_BOUND_MS} ms for uWS ${UWS_VERSION})`)
  const r = await request(`https://localhost:${port}/v1/models`, { dispatcher: trusting })
  t.equal(r.statusCode, 200, 'still serving')
  await r.body.text()
})

t.test('reload with new certificate files: a stream in flight finishes, its connection goes on, new connections get the new certificate', async (t) => {
  t.equal(await servedSerial(), serialOf(certs.server.cert))
  const client = new Client(`https://localhost:${port}`, { connect: { ca: read(certs.ca) }, pipelining: 1, keepAliveTimeout: 60_000 })
  t.teardown(() => client.close())
  let connects = 0
  client.on('connect', () => connects++)
  // a paced stream (the stub's x-stub-tps knob): 200 tokens at 20/s, so the reload lands in the middle of it
  const stream = await client.request({
    path: '/v1/chat/completions', method: 'POST',
    headers: { 'content-type': 'application/json', 'x-stub-tps': '20', 'x-stub-tokens': '200' },
    body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
  })
  t.equal(stream.statusCode, 200)
  const chunks: string[] = []
  const first = once(stream.body, 'data')
  stream.body.on('data', (d: Buffer) => chunks.push(d.toString()))
  let done = false
  const ended = once(stream.body, 'end').then(() => (done = true))
  await first

  copyFileSync(certs.server2.cert, live.cert)
  copyFileSync(certs.server2.key, live.key)
  const r = await m.cli('reload')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /changed: tls\n/, 'the config text did not change, the certificate did: the reload says so')
  const logged = await m.waitLog((l) => l.msg === 'TLS certificate reloaded')
  t.match(logged, { cert: live.cert, subject: 'CN=localhost', serial: serialOf(certs.server2.cert) })
  t.equal(await servedSerial(), serialOf(certs.server2.cert), 'a new connection is shown the new certificate')
  t.notOk(done, 'the stream was still running when the new certificate took over')
  await ended
  t.match(chunks.join(''), /data: \[DONE\]/, 'the stream that began before the reload finished whole')
  t.notMatch(chunks.join(''), /event: error/)
  const after = await client.request({ path: '/v1/models', method: 'GET' })
  await after.body.text()
  t.equal(after.statusCode, 200)
  t.equal(connects, 1, 'the connection opened before the reload carried the next request too')
})

t.test('reload with a key that does not match: refused naming the file, the running certificate stays', async (t) => {
  const running = await servedSerial()
  copyFileSync(certs.server.key, live.key) // server2's certificate with the first server's key
  const r = await m.cli('reload')
  t.equal(r.code, 1)
  t.match(r.stderr, new RegExp(`leaky\\.yaml:\\d+:\\d+ tls\\.key: ${live.key.replace(/[.]/g, '\\.')}: does not match the certificate in`))
  t.equal(await servedSerial(), running, 'still the certificate loaded before')
  const res = await request(`https://localhost:${port}/v1/models`, { dispatcher: trusting })
  t.equal(res.statusCode, 200)
  await res.body.text()

  writeFileSync(live.cert, 'not a certificate\n')
  const r2 = await m.cli('reload')
  t.equal(r2.code, 1)
  t.match(r2.stderr, /tls\.cert: .*live\.crt: no PEM certificate in the file/)
  t.equal(await servedSerial(), running)
  copyFileSync(certs.server2.cert, live.cert)
  copyFileSync(certs.server2.key, live.key)
})

t.test('upgrade: the next generation serves HTTPS on the same port with the certificate on disk, and listen_plain', async (t) => {
  const up = await m.cli('upgrade')
  t.equal(up.code, 0, up.stderr)
  t.match(up.stdout, /upgraded: generation 2 \(pid \d+\) serves/)
  t.equal(await servedSerial(), serialOf(certs.server2.cert))
  const r = await request(`https://localhost:${port}/v1/models`, { dispatcher: trusting, reset: true })
  t.equal(r.statusCode, 200)
  await r.body.text()
  const plain = await request(`http://127.0.0.1:${plainPort}/v1/models`, { reset: true })
  t.equal(plain.statusCode, 200, 'listen_plain, taken over by the new generation')
  await plain.body.text()
  t.equal(await handshake({ cert: read(certs.rogue.cert), key: read(certs.rogue.key) }) === 'connected', false, 'client_ca still applies')
})

t.test('watch: a renewed certificate on disk is loaded without a signal; encrypted key with passphrase; admin over HTTPS with client_cert: require', async (t) => {
  const files = { cert: `${certs.dir}/watched.crt`, key: `${certs.dir}/watched.key` }
  copyFileSync(certs.server.cert, files.cert)
  copyFileSync(certs.serverKeyEncrypted, files.key)
  const p = await startProxy(`listen: 127.0.0.1:0
workers: 1
drain_timeout: 5s
watch: true
tls: { cert: ${files.cert}, key: ${files.key}, passphrase: "\${env:LEAKY_TEST_PASSPHRASE}" }
admin:
  listen: 127.0.0.1:0
  tls: { cert: ${certs.server.cert}, key: ${certs.server.key}, client_ca: ${certs.ca}, client_cert: require }
${UP}`, { env: { LEAKY_TEST_PASSPHRASE: certs.passphrase } })
  t.teardown(() => p.stop())
  const serial = async () => {
    const s = tls.connect({ host: '127.0.0.1', port: p.port, servername: 'localhost', ca: read(certs.ca) })
    await once(s, 'secureConnect')
    const v = s.getPeerCertificate().serialNumber.toUpperCase()
    s.destroy()
    return v
  }
  t.equal(await serial(), serialOf(certs.server.cert), 'served with the encrypted key')

  // certbot-style: new files are written next to the old and renamed over them
  writeFileSync(`${files.key}.new`, read(certs.server2.key))
  writeFileSync(`${files.cert}.new`, read(certs.server2.cert))
  const { renameSync } = await import('node:fs')
  renameSync(`${files.key}.new`, files.key)
  renameSync(`${files.cert}.new`, files.cert)
  await p.waitLog((l) => l.msg === 'reloaded' && l.source === 'watch', 20_000)
  t.equal(await serial(), serialOf(certs.server2.cert), 'the renewed certificate is served')

  const withCert = new Agent({ connect: { ca: read(certs.ca), cert: read(certs.client.cert), key: read(certs.client.key) } })
  t.teardown(() => withCert.close())
  const ok = await request(`https://localhost:${p.adminPort}/live`, { dispatcher: withCert })
  t.equal(ok.statusCode, 200, 'admin with a client certificate')
  await ok.body.text()
  const noCert = new Agent({ connect: { ca: read(certs.ca) } })
  t.teardown(() => noCert.close())
  await t.rejects(request(`https://localhost:${p.adminPort}/live`, { dispatcher: noCert }), 'admin without a client certificate: refused')
})

t.test('client_cert: require on the proxy listener is refused by validate, with the reason', async (t) => {
  const file = `${certs.dir}/require.yaml`
  writeFileSync(file, `tls: { cert: ${certs.server.cert}, key: ${certs.server.key}, client_ca: ${certs.ca}, client_cert: require }\n`)
  const child = spawn(process.execPath, ['dist/cli/main.js', 'validate', '-c', file], { cwd: new URL('../..', import.meta.url).pathname })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d))
  child.stderr.on('data', (d: Buffer) => (out += d))
  const [code] = await once(child, 'exit')
  t.equal(code, 1)
  t.match(out, /require\.yaml:1:\d+ tls\.client_cert: require is not possible on the proxy listener/)
})
