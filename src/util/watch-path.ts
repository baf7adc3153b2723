/**
 * Watching files the way they are really replaced. A watch on a file follows its inode: an editor
 * or Ansible that writes a temp file and renames it over the original, or a Kubernetes ConfigMap
 * volume (`cfg.yaml → ..data/cfg.yaml`, `..data → ..2026_…` swapped by renaming a new link over
 * it), leaves that watch on a deleted file, and every later change goes unseen. So the directories
 * are watched instead, for the entries each path goes through: its own name and every symlink on
 * the way. After each change the chain is resolved again (a swap points it elsewhere).
 */
import { type FSWatcher, lstatSync, readlinkSync, watch } from "node:fs";
import { join, resolve, sep } from "node:path";

/** Symlinks followed at most, as the kernel's ELOOP limit. */
const MAX_HOPS = 40;

/**
 * Directory → the entry names in it that `path` goes through: the last entry, and each symlink
 * (followed: `cfg.yaml → ..data/cfg.yaml` adds `..data`, and the file in the directory it points
 * to). Missing entries are kept (watched for their creation).
 */
export function entriesOnPath(path: string): Map<string, Set<string>> {
  const entries = new Map<string, Set<string>>();
  const add = (dir: string, name: string) => {
    const names = entries.get(dir) ?? new Set<string>();
    names.add(name);
    entries.set(dir, names);
  };
  let rest = resolve(path).split(sep).filter(Boolean);
  let dir: string = sep;
  for (let hops = 0; rest.length > 0;) {
    const name = rest.shift()!;
    const here = join(dir, name);
    let target: string | undefined;
    try {
      target = hops < MAX_HOPS && lstatSync(here).isSymbolicLink() ? readlinkSync(here) : undefined;
    } catch {
      target = undefined; // missing: watched for its creation
    }
    if (target === undefined) {
      if (rest.length === 0) add(dir, name);
      dir = here;
      continue;
    }
    add(dir, name);
    hops++;
    rest = [...resolve(dir, target).split(sep).filter(Boolean), ...rest];
    dir = sep;
  }
  return entries;
}

export interface PathWatcher {
  close(): void;
}

/**
 * Calls `onChange` (debounced: one save is often several events) when any of `paths` may have
 * changed. Events for other entries of the same directories (temp files, a cache file beside the
 * config) are ignored. The caller re-reads and compares: an event is not proof of new content.
 * `onError` hears of a directory that cannot be watched (the others still are).
 */
export function watchPaths(paths: readonly string[], onChange: () => void, options: { debounceMs: number; onError(dir: string, error: unknown): void }): PathWatcher {
  const watchers = new Map<string, FSWatcher>();
  let entries = new Map<string, Set<string>>();
  let timer: Timer | undefined;
  let closed = false;

  const fire = () => {
    if (closed) return;
    arm();
    onChange();
  };
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(fire, options.debounceMs);
  };
  const unwatch = (dir: string) => {
    watchers.get(dir)?.close();
    watchers.delete(dir);
  };
  /** Watches the directories the paths go through now; stops watching those they no longer do. */
  function arm(): void {
    entries = new Map();
    for (const path of paths) {
      for (const [dir, names] of entriesOnPath(path)) entries.set(dir, new Set([...(entries.get(dir) ?? []), ...names]));
    }
    for (const dir of watchers.keys()) if (!entries.has(dir)) unwatch(dir);
    for (const dir of entries.keys()) {
      if (watchers.has(dir)) continue;
      try {
        const watcher = watch(dir, (_event, name) => {
          // No name (some platforms): anything may have changed.
          if (name === null || entries.get(dir)?.has(String(name))) schedule();
        });
        // A directory that goes away (a swapped-out ConfigMap version) is watched no more; the next arm() settles it.
        watcher.on("error", () => unwatch(dir));
        watchers.set(dir, watcher);
      } catch (e) {
        options.onError(dir, e);
      }
    }
  }

  arm();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      for (const dir of [...watchers.keys()]) unwatch(dir);
    },
  };
}
