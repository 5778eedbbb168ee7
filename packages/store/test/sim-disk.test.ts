import { describe, expect, it } from 'vitest';
import { SimCrash, SimDisk } from './sim-disk.js';

/* The simulated disk keeps exactly what a real one guarantees: the crash tests are only as good as it. */

const b = (s: string) => Buffer.from(s);

async function writeFile(disk: SimDisk, path: string, text: string, sync: boolean): Promise<void> {
  const f = await disk.open(path, 'create');
  await f.writev([b(text)], 0);
  if (sync) await f.sync();
  await f.close();
}

describe('sim disk', () => {
  it('sim disk - a created file survives a crash only once its folder is synced, its bytes only once fsynced', async () => {
    const disk = new SimDisk();
    await disk.mkdir('/d');
    await writeFile(disk, '/d/synced', 'one', true);
    expect(disk.crash().list('/d')).toEqual([]);
    await disk.syncDir('/d');
    await writeFile(disk, '/d/unsynced', 'two', false);
    await disk.syncDir('/d');
    const after = disk.crash();
    expect(after.list('/d').sort()).toEqual(['synced', 'unsynced']);
    expect(after.contents('/d/synced')).toEqual(b('one'));
    expect(after.contents('/d/unsynced')).toEqual(b(''));
  });

  it('sim disk - a rename or unlink not followed by a folder sync is undone by a crash', async () => {
    const disk = new SimDisk();
    await disk.mkdir('/d');
    await writeFile(disk, '/d/a', 'a', true);
    await writeFile(disk, '/d/b', 'b', true);
    await disk.syncDir('/d');
    await disk.rename('/d/a', '/d/c');
    await disk.unlink('/d/b');
    expect(disk.list('/d')).toEqual(['c']);
    expect(disk.crash().list('/d').sort()).toEqual(['a', 'b']);
    await disk.syncDir('/d');
    expect(disk.crash().list('/d')).toEqual(['c']);
  });

  it('sim disk - a crash may keep a prefix of the last write that was not fsynced', async () => {
    const disk = new SimDisk();
    await disk.mkdir('/d');
    const f = await disk.open('/d/f', 'create');
    await disk.syncDir('/d');
    await f.writev([b('durable-')], 0);
    await f.sync();
    await f.writev([b('0123'), b('456789')], 8);
    expect(disk.crash({ tearLastWrite: true, rng: () => 0 }).contents('/d/f')).toEqual(b('durable-'));
    expect(disk.crash({ tearLastWrite: true, rng: () => 0.5 }).contents('/d/f')).toEqual(b('durable-01234'));
    expect(disk.crash({ tearLastWrite: true, rng: () => 0.9999 }).contents('/d/f')).toEqual(b('durable-0123456789'));
    expect(disk.crash().contents('/d/f')).toEqual(b('durable-'));
  });

  it('sim disk - errors look like node:fs errors', async () => {
    const disk = new SimDisk();
    await disk.mkdir('/d');
    await expect(disk.open('/d/x', 'read')).rejects.toMatchObject({ code: 'ENOENT', syscall: 'open' });
    await expect(disk.open('/d/x', 'write')).rejects.toMatchObject({ code: 'ENOENT' });
    await writeFile(disk, '/d/x', 'x', false);
    await expect(disk.open('/d/x', 'create')).rejects.toMatchObject({ code: 'EEXIST', errno: -17 });
    await expect(disk.rename('/d/y', '/d/z')).rejects.toMatchObject({ code: 'ENOENT', syscall: 'rename' });
    await expect(disk.unlink('/d/y')).rejects.toMatchObject({ code: 'ENOENT', syscall: 'unlink' });
    await expect(disk.readdir('/nope')).rejects.toMatchObject({ code: 'ENOENT' });
    const ro = await disk.open('/d/x', 'read');
    await expect(ro.writev([b('y')], 0)).rejects.toMatchObject({ code: 'EBADF' });
  });

  it('sim disk - crashAt kills the disk at that mutating call and for good', async () => {
    const disk = new SimDisk({ crashAt: 3 });
    await disk.mkdir('/d'); // 1
    const f = await disk.open('/d/f', 'create'); // 2
    await expect(f.writev([b('x')], 0)).rejects.toBeInstanceOf(SimCrash); // 3
    expect(disk.crashed).toBe(true);
    await expect(f.read(Buffer.alloc(1), 0, 1, 0)).rejects.toBeInstanceOf(SimCrash);
    await expect(disk.readdir('/d')).rejects.toBeInstanceOf(SimCrash);
    expect(disk.log.map((r) => r.op)).toEqual(['mkdir', 'create', 'writev']);
  });

  it('sim disk - faults fail one call, and a short write writes part of its bytes', async () => {
    const disk = new SimDisk({
      faultAt: [
        { call: 3, kind: 'ENOSPC' },
        { call: 4, kind: 'short' },
        { call: 6, kind: 'EIO' },
      ],
    });
    await disk.mkdir('/d');
    const f = await disk.open('/d/f', 'create');
    await expect(f.writev([b('abcd')], 0)).rejects.toMatchObject({ code: 'ENOSPC', errno: -28 });
    expect(await f.writev([b('ab'), b('cd')], 0)).toBe(2);
    expect(await f.writev([b('cd')], 2)).toBe(2);
    await expect(f.sync()).rejects.toMatchObject({ code: 'EIO' });
    await f.sync();
    expect(disk.contents('/d/f')).toEqual(b('abcd'));
    expect(disk.mutations).toBe(7);
  });

  it('sim disk - pauseAt holds a call until released', async () => {
    const disk = new SimDisk();
    await disk.mkdir('/d');
    const gate = disk.pauseAt(2);
    let done = false;
    const creating = disk.open('/d/f', 'create').then(() => {
      done = true;
    });
    await gate.reached;
    expect(done).toBe(false);
    gate.release();
    await creating;
    expect(disk.list('/d')).toEqual(['f']);
  });
});
