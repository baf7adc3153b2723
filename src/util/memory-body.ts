/**
 * Responses made here around bytes already in memory (a cache hit, a replayed answer): their body
 * is remembered, so the response phase sends the same Response on instead of reading its body
 * back into a new one (a copy and a second Response per hit).
 */
const bodies = new WeakMap<Response, Uint8Array>();

export function responseFromMemory(body: Uint8Array, init: ResponseInit): Response {
  const response = new Response(body, init);
  bodies.set(response, body);
  return response;
}

/** The bytes of a response made by responseFromMemory (undefined for any other). */
export function bodyInMemory(response: Response): Uint8Array | undefined {
  return bodies.get(response);
}
