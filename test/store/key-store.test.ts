// The runtime key store on a real SQLite file: a file of every earlier schema version (an empty one included) opens
// migrated to the current version with its rows intact; a newer file is refused; a file that is not a database is
// moved aside with a message naming it; an unwritable place is a clear error naming the file.
import t from 'tap'
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { scratchDir } from '../helpers/scratch.js'
import { KeyStore, KeyStoreError, KEY_STORE_VERSION, MIGRATIONS, createAtVersion } from '../../src/store/key-store.js'

t.equal(KEY_STORE_VERSION, MIGRATIONS.length, 'the version is the number of migrations')

for (let from = 0; from < KEY_STORE_VERSION; from++) {
  t.test(`a store at schema version ${from} opens migrated to ${KEY_STORE_VERSION}, rows kept`, async (t) => {
    const file = path.join(scratchDir(), 'keys.sqlite')
    const db = createAtVersion(file, from)
    if (from >= 1) db.prepare("INSERT INTO keys (id, sha256, org, tier, created_at, expires_at) VALUES ('old', ?, 'acme', 'gold', 1000, 5000)").run('a'.repeat(64))
    db.close()
    const s = KeyStore.open(file)
    t.teardown(() => s.close())
    t.equal(s.version(), KEY_STORE_VERSION)
    if (from >= 1) {
      t.match(s.get('old'), { id: 'old', sha256: 'a'.repeat(64), org: 'acme', tier: 'gold', created_at: 1000, expires_at: 5000, models: null, routes: null, prev_sha256: null })
    }
    t.ok(s.create({ id: 'new', org: '', tier: '', expires_at: null, models: ['m'], routes: ['/v1/'] }, 'b'.repeat(64), 2000))
    t.same(s.get('new')?.models, ['m'])
  })
}

t.test('create, duplicate id, rotate with grace, revoke', async (t) => {
  const s = KeyStore.open(path.join(scratchDir(), 'k.sqlite'))
  t.teardown(() => s.close())
  const k = { id: 'a', org: 'o', tier: '', expires_at: null, models: null, routes: null }
  t.ok(s.create(k, '1'.repeat(64), 1))
  t.notOk(s.create(k, '2'.repeat(64), 2), 'same id refused')
  const r = s.rotate('a', '3'.repeat(64), 60_000, 10)!
  t.match(r, { sha256: '3'.repeat(64), prev_sha256: '1'.repeat(64), prev_until: 60_010, rotated_at: 10 })
  const v = s.revoke('a', 20)!
  t.match(v, { revoked_at: 20, prev_sha256: null })
  t.equal(s.rotate('a', '4'.repeat(64), 0, 30), null, 'a revoked key is not rotated')
  t.equal(s.revoke('nope', 1), null)
})

t.test('another connection\'s commit moves data_version', async (t) => {
  const file = path.join(scratchDir(), 'k.sqlite')
  const a = KeyStore.open(file)
  const b = KeyStore.open(file)
  t.teardown(() => {
    a.close()
    b.close()
  })
  const before = a.dataVersion()
  b.create({ id: 'x', org: '', tier: '', expires_at: null, models: null, routes: null }, '5'.repeat(64), 1)
  t.not(a.dataVersion(), before)
  t.equal(a.list().length, 1)
})

t.test('a store written by a newer version is refused, not misread', async (t) => {
  const file = path.join(scratchDir(), 'k.sqlite')
  const db = createAtVersion(file, KEY_STORE_VERSION)
  db.pragma(`user_version = ${KEY_STORE_VERSION + 1}`)
  db.close()
  t.throws(() => KeyStore.open(file, { moveCorrupt: true }), { message: new RegExp(`key store ${file}: schema version ${KEY_STORE_VERSION + 1} was written by a newer leaky`) })
  t.ok(existsSync(file), 'not moved aside: it is fine, just newer')
})

t.test('a file that is not a database is moved aside, the error names both', async (t) => {
  const dir = scratchDir()
  const file = path.join(dir, 'k.sqlite')
  writeFileSync(file, 'this is not sqlite, just garbage '.repeat(200))
  let err: KeyStoreError | null = null
  try {
    KeyStore.open(file, { moveCorrupt: true })
  } catch (e) {
    err = e as KeyStoreError
  }
  t.ok(err instanceof KeyStoreError)
  t.match(err!.message, `key store ${file}: not a usable SQLite database`)
  t.match(err!.aside, /k\.sqlite\.bad-/)
  t.match(err!.message, `moved aside to ${err!.aside}`)
  t.notOk(existsSync(file))
  t.same(readdirSync(dir).filter((f) => f.startsWith('k.sqlite.bad-')).length, 1)
})

t.test('an unwritable directory: a clear error naming the file, nothing moved', { skip: process.getuid?.() === 0 ? 'root writes anywhere' : false }, async (t) => {
  const dir = path.join(scratchDir(), 'ro')
  mkdirSync(dir, 0o500)
  t.teardown(() => chmodSync(dir, 0o700))
  const file = path.join(dir, 'k.sqlite')
  t.throws(() => KeyStore.open(file, { moveCorrupt: true }), { message: new RegExp(`key store ${file}: `) })
})

t.test('a missing directory: a clear error naming the file', async (t) => {
  const file = path.join(scratchDir(), 'no', 'such', 'k.sqlite')
  t.throws(() => KeyStore.open(file, { moveCorrupt: true }), { message: new RegExp(`key store ${file}: .*ENOENT`) })
})
