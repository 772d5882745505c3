// Redis Cluster key slots, against the values Redis itself documents (CLUSTER KEYSLOT) and the hash-tag rules.
import t from 'tap'
import { hashTag, keySlot } from '../../src/limiter/redis-slot.js'

t.test('slots Redis documents', async (t) => {
  t.equal(keySlot('somekey'), 11058)
  t.equal(keySlot('foo{hash_tag}'), 2515)
  t.equal(keySlot('foo'), 12182)
  t.equal(keySlot('bar'), 5061)
})

t.test('hash tags: the first non-empty {...}', async (t) => {
  t.equal(hashTag('{user1000}.following'), 'user1000')
  t.equal(keySlot('{user1000}.following'), keySlot('{user1000}.followers'))
  t.equal(hashTag('foo{}{bar}'), 'foo{}{bar}', 'an empty first tag: the whole key')
  t.equal(hashTag('foo{{bar}}zap'), '{bar', 'up to the first } after the first {')
  t.equal(hashTag('foo{bar}{zap}'), 'bar')
  t.equal(hashTag('no tag'), 'no tag')
  t.equal(keySlot('leaky:{rl}:{a}:'), keySlot('leaky:{rl}:{b}:'), 'a tag in key_prefix puts every limit in one slot')
  t.not(keySlot('leaky:{left}:'), keySlot('leaky:{right}:'))
})
