// MurmurHash3 x86_32 (Austin Appleby, SMHasher): the hash behind feature hashing, so that
// a bucket index depends only on the token and the seed, never on the order data arrives.

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

const encoder = new TextEncoder();
let scratch = new Uint8Array(256);

/**
 * MurmurHash3 x86_32 of `input` (a string is hashed as its UTF-8 bytes) as an unsigned
 * 32-bit integer. `start`/`end` hash a byte range without copying it.
 */
export function murmur3_32(input: Uint8Array | string, seed = 0, start = 0, end?: number): number {
  if (typeof input === "string") {
    const bytes = utf8(input);
    return murmur3Bytes(bytes, seed >>> 0, 0, bytes.length);
  }
  return murmur3Bytes(input, seed >>> 0, start, end ?? input.length);
}

/** MurmurHash3 of one 32-bit integer (little-endian bytes), for hashing indices without allocating. */
export function murmur3_32_int(value: number, seed = 0): number {
  let h = seed >>> 0;
  h = mixBlock(h, value | 0);
  return fmix(h ^ 4);
}

// The main loop of MurmurHash3_x86_32: 4-byte little-endian blocks, then the tail, then fmix32.
function murmur3Bytes(b: Uint8Array, seed: number, start: number, end: number): number {
  let h = seed;
  const blocksEnd = start + ((end - start) & ~3);
  let i = start;
  for (; i < blocksEnd; i += 4) {
    const k = (b[i] ?? 0) | ((b[i + 1] ?? 0) << 8) | ((b[i + 2] ?? 0) << 16) | ((b[i + 3] ?? 0) << 24);
    h = mixBlock(h, k);
  }
  let k = 0;
  switch (end - i) {
    case 3:
      k ^= (b[i + 2] ?? 0) << 16;
    // falls through
    case 2:
      k ^= (b[i + 1] ?? 0) << 8;
    // falls through
    case 1:
      k ^= b[i] ?? 0;
      h ^= scrambleK(k);
  }
  return fmix(h ^ (end - start));
}

function mixBlock(h: number, k: number): number {
  h ^= scrambleK(k);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function scrambleK(k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, C2);
}

// fmix32: the finalizer that makes every input bit affect every output bit.
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// Encodes into a reused buffer: hashing millions of short tokens should not allocate per token.
function utf8(s: string): Uint8Array {
  if (s.length * 3 > scratch.length) scratch = new Uint8Array(s.length * 3);
  const { written } = encoder.encodeInto(s, scratch);
  return scratch.subarray(0, written);
}
