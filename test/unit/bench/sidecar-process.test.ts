import { describe, expect, it } from 'vitest';
import { imageNodeFlags } from '../../../bench/lib/sidecar-process.js';

describe('imageNodeFlags', () => {
  it("reads the node flags of the repository's Dockerfile, which the benchmarks start every sidecar with", () => {
    expect(imageNodeFlags()).toEqual(['--max-semi-space-size=1', '--max-opt=2']);
  });

  it.each([
    { name: 'flags between node and the entry', cmd: 'CMD ["node", "--a", "--b=1", "dist/sidecar/main.js"]', flags: ['--a', '--b=1'] },
    { name: 'no flags', cmd: 'CMD ["node", "dist/sidecar/main.js"]', flags: [] },
  ])('$name', ({ cmd, flags }) => {
    expect(imageNodeFlags(`FROM x\n  CMD node -e "healthcheck"\n${cmd}\n`)).toEqual(flags);
  });

  it.each([
    { name: 'no CMD line', text: 'FROM x\n' },
    { name: 'a shell-form CMD', text: 'CMD node dist/sidecar/main.js\n' },
    { name: 'another entry', text: 'CMD ["node", "dist/other.js"]\n' },
  ])('refuses $name', ({ text }) => {
    expect(() => imageNodeFlags(text)).toThrow(/Dockerfile/);
  });
});
