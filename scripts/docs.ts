// Rewrites the README's input and output tables from action.yml.
import { readFileSync, writeFileSync } from 'node:fs'
import { updateReadme } from './action-docs.js'

const readme = readFileSync('README.md', 'utf8')
writeFileSync(
  'README.md',
  updateReadme(readme, readFileSync('action.yml', 'utf8'))
)
