// Renders the README's input and output tables from action.yml, so the two
// cannot drift apart (a test compares them).

import { parse } from 'yaml'

interface ActionYml {
  inputs: Record<string, { description: string; default?: string }>
  outputs: Record<string, { description: string }>
}

const cell = (text: string): string =>
  text.replace(/\|/g, '\\|').replace(/\n/g, ' ')

export function renderTables(yml: string): { inputs: string; outputs: string } {
  const action = parse(yml) as ActionYml
  const inputs = [
    '| input | default | description |',
    '|---|---|---|',
    ...Object.entries(action.inputs).map(
      ([name, i]) =>
        `| \`${name}\` | ${i.default ? `\`${i.default}\`` : ''} | ${cell(i.description)} |`
    )
  ].join('\n')
  const outputs = [
    '| output | description |',
    '|---|---|',
    ...Object.entries(action.outputs).map(
      ([name, o]) => `| \`${name}\` | ${cell(o.description)} |`
    )
  ].join('\n')
  return { inputs, outputs }
}

export function updateReadme(readme: string, yml: string): string {
  const tables = renderTables(yml)
  const replace = (text: string, key: string, table: string): string =>
    text.replace(
      new RegExp(`(<!-- ${key}:start -->\\n)[\\s\\S]*?(<!-- ${key}:end -->)`),
      `$1${table}\n$2`
    )
  return replace(
    replace(readme, 'inputs', tables.inputs),
    'outputs',
    tables.outputs
  )
}
