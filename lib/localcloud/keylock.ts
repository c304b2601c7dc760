/**
 * Mutual exclusion per key inside this process: a section for a key starts once the previous
 * section for that key has finished. The object store is one process, so this is all it takes
 * to make "read the current version, replace it" one step for concurrent writers of one key.
 */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<void>>();

  /** Run `section` alone among the sections of `key`; its result or error passes through. */
  async run<T>(key: string, section: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release = () => {};
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => done);
    this.#tails.set(key, tail);
    await previous;
    try {
      return await section();
    } finally {
      release();
      // The last section of a key leaves no entry behind.
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
