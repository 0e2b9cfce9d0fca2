import { describe, expect, it } from '@jest/globals'
import {
  ExcludeRules,
  excludeMatches,
  globMatch
} from '../../src/sync/excludes.js'
import { humanBytes, shellQuote } from '../../src/sync/format.js'
import { removalScript } from '../../src/sync/guest-scripts.js'

describe('globMatch (Go filepath.Match on / paths)', () => {
  it.each([
    ['*.log', 'a.log', true],
    ['*.log', 'dir/a.log', false],
    ['a?c', 'abc', true],
    ['a?c', 'a/c', false],
    ['[abc]x', 'bx', true],
    ['[^abc]x', 'bx', false],
    ['[a-c]x', 'cx', true],
    ['[a-c]x', 'dx', false],
    ['apps/*/.build', 'apps/web/.build', true],
    ['apps/*/.build', 'apps/a/b/.build', false],
    ['é*', 'éclair', true],
    ['[', '[', false],
    ['[]', 'x', false],
    ['x[', 'x[', false]
  ])('%s against %s is %s', (pattern, name, want) => {
    expect(globMatch(pattern, name)).toBe(want)
  })
})

describe('excludeMatches (Crabbox rules a-e)', () => {
  it.each([
    ['node_modules', 'node_modules', true], // (a) equal
    ['node_modules', 'node_modules/x/y.js', true], // (a) prefix
    ['node_modules', 'pkg/node_modules/x.js', true], // (b) segment
    ['node_mod*', 'pkg/node_modules/x.js', true], // (b) glob segment
    ['*.log', 'deep/dir/a.log', true], // (b)/(c) basename
    ['src/*.ts', 'src/a.ts', true], // (d) full path
    ['src/*.ts', 'lib/src/a.ts', false],
    ['src/*', 'src/sub/a.ts', true], // (e) leading prefix
    ['.yarn/cache', '.yarn/cache/x.zip', true],
    ['.yarn/cache', 'pkg/.yarn/cache/x.zip', false],
    ['dist', 'distance.txt', false],
    ['target', 'src/target.rs', false]
  ])('%s against %s is %s', (pattern, path, want) => {
    expect(excludeMatches(pattern, path)).toBe(want)
  })
})

describe('ExcludeRules', () => {
  const decide = (
    lines: string[],
    path: string,
    tracked = false
  ): ReturnType<ExcludeRules['decide']> =>
    new ExcludeRules(lines).decide(path, tracked)

  it('applies built-ins, later rules win, ! re-includes', () => {
    expect(decide([], 'node_modules/a.js').excluded).toBe(true)
    expect(decide([], 'src/a.ts').excluded).toBe(false)
    expect(decide(['*.tmp'], 'x.tmp').excluded).toBe(true)
    expect(decide(['*.tmp', '!keep.tmp'], 'keep.tmp').excluded).toBe(false)
    expect(decide(['!node_modules'], 'node_modules/a.js').excluded).toBe(false)
  })

  it('treats \\! as a literal ! and skips blanks and comments', () => {
    expect(decide(['\\!bang'], '!bang').excluded).toBe(true)
    expect(decide(['# *.ts', '  ', 'x/'], 'a.ts').excluded).toBe(false)
    expect(decide(['/x/'], 'x/y').excluded).toBe(true)
  })

  it('never lets config re-include the protected set', () => {
    expect(decide(['!.crabbox/env'], '.crabbox/env/x').excluded).toBe(true)
    expect(
      decide(['!.smolvm-action'], '.smolvm-action/manifest').excluded
    ).toBe(true)
    expect(decide([], '.CRABBOX/Env/x').excluded).toBe(true)
    expect(decide([], '.Smolvm-Action').excluded).toBe(true)
  })

  it('keeps tracked files matched only by ambiguous built-ins', () => {
    expect(decide([], 'dist/x.js', true)).toEqual({
      excluded: false,
      protectedBy: 'dist'
    })
    expect(decide([], 'dist/x.js', false).excluded).toBe(true)
    expect(decide([], 'apps/web/.build/o', true).protectedBy).toBe(
      'apps/*/.build'
    )
    // node_modules is not ambiguous: tracked or not, it stays out.
    expect(decide([], 'node_modules/a.js', true).excluded).toBe(true)
    // A user rule for the same path decides, so it is excluded.
    expect(decide(['dist'], 'dist/x.js', true).excluded).toBe(true)
  })
})

describe('formatting helpers', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [5 * 1024 ** 2, '5.0 MiB'],
    [20 * 1024 ** 3, '20.0 GiB']
  ])('humanBytes(%d) is %s', (n, want) => {
    expect(humanBytes(n)).toBe(want)
  })

  it('single-quotes anything for sh', () => {
    expect(shellQuote(`it's`)).toBe(`'it'\\''s'`)
    expect(shellQuote('a\nb $x')).toBe(`'a\nb $x'`)
  })

  it('removes files, then their emptied parents deepest first', () => {
    const script = removalScript(['a/b/c.txt', 'a/d.txt', 'top'])
    expect(script).toBe(
      "rm -f -- 'a/b/c.txt' 'a/d.txt' 'top' || exit 1\n" +
        "rmdir -- 'a/b' 'a' 2>/dev/null || :\n"
    )
    expect(removalScript([])).toBe('')
  })
})
