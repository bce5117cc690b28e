// The argon2id verify rate of @node-rs/argon2 (the Node addon the issue named as the fastest
// implementation seen here) with Warden's parameters, for comparison with warden-bench's
// argon2 ceiling. Not part of the bench: it needs Node and the npm registry.
//
//   cd "$(mktemp -d)" && npm install @node-rs/argon2
//   UV_THREADPOOL_SIZE=2 node /path/to/node-argon2.mjs 2 5   # concurrent verifications, seconds
import { hash, verify } from '@node-rs/argon2';

const password = 'bench-correct-horse-battery';
const options = { memoryCost: 19456, timeCost: 2, parallelism: 1, algorithm: 2 /* Argon2id */ };
const concurrent = Number(process.argv[2] || 2);
const seconds = Number(process.argv[3] || 5);

const stored = await hash(password, options);
let done = 0;
const start = Date.now();
async function loop() {
  while (Date.now() - start < seconds * 1000) {
    if (!(await verify(stored, password))) throw new Error('verification failed');
    done++;
  }
}
await Promise.all(Array.from({ length: concurrent }, loop));
const elapsed = (Date.now() - start) / 1000;
console.log(`${concurrent} concurrent: ${(done / elapsed).toFixed(1)} verifications/s, ` +
  `${((1000 * concurrent * elapsed) / done).toFixed(2)} ms each`);
