// nginx as the side-by-side reference: the same upstream, configured as a careful operator would for an LLM
// proxy (upstream keep-alive, HTTP/1.1 upstream, no access log, no buffering on the streaming routes) and sending
// the forwarding headers our proxy sends too. Runs from a temp prefix with `daemon off`, so its PID is ours.
import { mkdirSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { run, start } from './procs.mjs'

export function nginxConfig({ dir, port, upstreamPort, workers, keepalive, runAsRoot, tls = null }) {
  return `# written by bench/macro/nginx.mjs
worker_processes ${workers};
daemon off;
master_process on;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
${runAsRoot ? 'user root;' : ''}
events { worker_connections 4096; }
http {
  access_log off;
  # nginx closes a client connection after 1000 requests by default; the proxy never does
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  client_body_temp_path ${join(dir, 'client_body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  upstream stub {
    server 127.0.0.1:${upstreamPort};
    keepalive ${keepalive};
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port} reuseport${tls === null ? '' : ' ssl'};
${tls === null ? '' : `    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    # wrk never resumes a session; off here too, so a new connection is a full handshake on both sides in any case
    ssl_session_cache off;
    ssl_session_tickets off;
`}    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Request-Id $request_id;
    location / {
      proxy_pass http://stub;
    }
    # LLM routes stream: every SSE event goes out as it arrives
    location /v1/ {
      proxy_pass http://stub;
      proxy_buffering off;
    }
  }
}
`
}

export async function nginxVersion(bin) {
  const r = await run(bin, ['-v'])
  return (r.stderr + r.stdout).trim().replace(/^nginx version:\s*/, '')
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

function probe(port, tls) {
  return new Promise((resolve) => {
    const get = tls ? httpsRequest : request
    const req = get({ host: '127.0.0.1', port, path: '/__stub/health', agent: false, rejectUnauthorized: false }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode === 200))
    })
    req.on('error', () => resolve(false))
    req.end()
  })
}

/** Starts nginx in `dir` in front of the stub (over TLS with `tls: { cert, key }`); resolves { proc, port } once it answers. */
export async function startNginx({ bin, dir, upstreamPort, workers, keepalive, taskset, cpus, tls = null }) {
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, d), { recursive: true })
  // the port is found free and then handed over: another process may take it in between, so retry a few times
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const conf = join(dir, 'nginx.conf')
    const runAsRoot = process.getuid?.() === 0
    writeFileSync(conf, nginxConfig({ dir, port, upstreamPort, workers, keepalive, runAsRoot, tls }))
    const proc = start(bin, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], { taskset, cpus })
    const deadline = Date.now() + 5000
    while (!proc.exited && Date.now() < deadline) {
      if (await probe(port, tls !== null)) return { proc, port }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    if (!proc.exited) {
      process.kill(proc.pid, 'SIGKILL')
      await proc.exit
    }
    if (attempt >= 2) throw new Error(`nginx did not start: ${proc.stderr.trim()}`)
  }
}
