// config/kubernetes.yaml: a Deployment with readiness (/ready) and liveness (/live) probes on the admin port, a
// preStop pause and a grace period longer than the drain, pod anti-affinity, a PodDisruptionBudget and a Service;
// the leaky config inside the ConfigMap is valid and listens where the probes look. `kubectl kustomize` renders it
// offline when kubectl is installed (no cluster here, so no server-side validation).
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseAllDocuments } from 'yaml'
import { parseConfig, formatIssue } from '../../src/config/index.js'
import { ROOT } from '../helpers/proxy.js'

const FILE = path.join(ROOT, 'config/kubernetes.yaml')
type Any = any
const docs = parseAllDocuments(readFileSync(FILE, 'utf8')).map((d) => {
  t.same(d.errors, [], 'valid YAML')
  return d.toJS() as Any
})
const byKind = (k: string) => docs.find((d) => d.kind === k)

t.test('kinds', async (t) => {
  t.same(docs.map((d) => d.kind).sort(), ['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Service'])
})

t.test('the config in the ConfigMap is valid; admin listens on the pod IP; drain fits the grace period', async (t) => {
  const yaml = byKind('ConfigMap').data['leaky.yaml'] as string
  const r = parseConfig(yaml, 'leaky.yaml', { LEAKY_ADMIN_TOKEN: 't', OPENAI_API_KEY: 'k' })
  t.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'))
  if (!r.ok) return
  t.equal(r.config.admin.listen, '0.0.0.0:9090')
  const pod = byKind('Deployment').spec.template.spec
  const preStop = Number(pod.containers[0].lifecycle.preStop.exec.command[1])
  t.ok(pod.terminationGracePeriodSeconds * 1000 > r.config.drain_timeout + preStop * 1000, 'grace > preStop + drain_timeout')
})

t.test('probes, preStop, anti-affinity, non-root', async (t) => {
  const d = byKind('Deployment')
  const c = d.spec.template.spec.containers[0]
  const admin = c.ports.find((p: Any) => p.containerPort === 9090).name
  t.same([c.readinessProbe.httpGet.path, c.readinessProbe.httpGet.port], ['/ready', admin])
  t.same([c.livenessProbe.httpGet.path, c.livenessProbe.httpGet.port], ['/live', admin])
  t.match(c.lifecycle.preStop.exec.command, ['sleep', /^\d+$/])
  const anti = d.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm
  t.equal(anti.topologyKey, 'kubernetes.io/hostname')
  t.same(anti.labelSelector.matchLabels, d.spec.selector.matchLabels)
  t.equal(d.spec.template.spec.securityContext.runAsNonRoot, true)
  t.equal(c.securityContext.readOnlyRootFilesystem, true)
  const mounts = c.volumeMounts.map((m: Any) => m.mountPath).sort()
  t.same(mounts, ['/etc/leaky', '/run/leaky', '/tmp', '/var/lib/leaky'], 'writable places: state, pid file and socket, temp')
  t.equal(d.spec.strategy.rollingUpdate.maxUnavailable, 0)
})

t.test('PodDisruptionBudget and Service select the pods', async (t) => {
  const labels = byKind('Deployment').spec.template.metadata.labels
  t.same(byKind('PodDisruptionBudget').spec.selector.matchLabels, labels)
  t.equal(byKind('PodDisruptionBudget').spec.maxUnavailable, 1)
  t.same(byKind('Service').spec.selector, labels)
})

const hasKubectl = spawnSync('sh', ['-c', 'command -v kubectl']).status === 0
t.test('kubectl kustomize renders it', { skip: hasKubectl ? false : 'kubectl is not installed here' }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'leaky-k8s-'))
  copyFileSync(FILE, path.join(dir, 'kubernetes.yaml'))
  writeFileSync(path.join(dir, 'kustomization.yaml'), 'resources: [kubernetes.yaml]\n')
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 30_000 })
  t.equal(r.status, 0, r.stderr)
  t.equal(parseAllDocuments(r.stdout).length, 4)
})
