import { describe, expect, it } from 'vitest';
import { subjects } from '../src/cluster/subjects.js';

describe('cluster subjects', () => {
  it('subjects - an id of any UTF-8 has a subject of its own, and back; meta subjects are no id', () => {
    const s = subjects('prod');
    expect(s.stream).toBe('GOSSIP_prod');
    for (const id of ['a', 'cfg/x.y', 'sp ace', '*>', 'ünï', 'x'.repeat(1024)]) {
      const subject = s.idSubject(id);
      expect(subject).toMatch(/^gossip\.prod\.id\.[A-Za-z0-9_-]+$/);
      expect(s.idOf(subject)).toBe(id);
    }
    expect(s.idOf(s.horizon)).toBeUndefined();
    expect(s.idOf(s.epoch)).toBeUndefined();
    expect(s.idOf(s.emit)).toBeUndefined();
  });

  it('subjects - a token no edge writes names no id: another spelling of an id, bytes that are not UTF-8', () => {
    const s = subjects('prod');
    expect(s.idOf('gossip.prod.id.aWQ')).toBe('id');
    // the same bytes as 'aWQ' once decoded (its last character's spare bits set)
    expect(Buffer.from('aWR', 'base64url').toString()).toBe('id');
    expect(s.idOf('gossip.prod.id.aWR')).toBeUndefined();
    expect(s.idOf('gossip.prod.id.aWQ=')).toBeUndefined(); // padded
    expect(s.idOf(`gossip.prod.id.${Buffer.from([0xff, 0xfe]).toString('base64url')}`)).toBeUndefined();
    expect(s.idOf('gossip.prod.id.a.b')).toBeUndefined();
  });
});
