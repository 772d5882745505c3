// systemd readiness for Type=notify. Node cannot send on the unix datagram socket in $NOTIFY_SOCKET without a
// native addon, so the master runs `systemd-notify`, naming itself as the main pid (the unit needs
// NotifyAccess=all, since the sender is a child of the master). systemd-notify waits until systemd has read the
// message (it does not pass --no-block), which is what makes the message attributable to the unit.
import { spawn } from 'node:child_process'

export type NotifyResult = { sent: boolean; error: string | null }

/** Send `READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=…` lines; a no-op outside systemd. */
export function sdNotify(lines: string[], env: NodeJS.ProcessEnv = process.env, pid = process.pid): Promise<NotifyResult> {
  if (env.NOTIFY_SOCKET === undefined || env.NOTIFY_SOCKET === '') return Promise.resolve({ sent: false, error: null })
  return new Promise((resolve) => {
    const child = spawn('systemd-notify', [`--pid=${pid}`, ...lines], { env, stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (d: string) => (err += d))
    child.on('error', (e) => resolve({ sent: false, error: `systemd-notify: ${e.message}` }))
    child.on('exit', (code) => resolve(code === 0 ? { sent: true, error: null } : { sent: false, error: `systemd-notify exited ${code}: ${err.trim()}` }))
  })
}
