/** Buffers that can be handed to another thread. */

/** An ArrayBuffer holding exactly these bytes that may be transferred: the view's own, or a copy. */
export function ownBuffer(b: Uint8Array): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  return copyOf(b);
}

/** These bytes in a new ArrayBuffer of their own. */
export function copyOf(b: Uint8Array): ArrayBuffer {
  const ab = new ArrayBuffer(b.byteLength);
  new Uint8Array(ab).set(b);
  return ab;
}
