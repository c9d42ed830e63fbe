// validate.mjs — checks recorded HTTP exchanges against docs/openapi.yaml.
//
// usage: node validate.mjs OPENAPI.yaml SAMPLES.json
// SAMPLES.json: [{"server":"hub"|"unit","method","path","status",
//                 "content_type","body"}] where path is the request path
// (query string allowed) and body the parsed JSON (or null).
//
// For each sample: finds the operation whose path template matches (unit
// operations are those tagged "unit"; a concrete path beats a templated
// one), requires the status to be documented, and the content type too,
// and validates a JSON body against the response schema with ajv
// (JSON Schema 2020-12, the dialect of OpenAPI 3.1, formats on).
// Then: every operation of the document must have been exercised, and
// every operation's documented success status (2xx) must have been seen.
// Prints one line per problem and "N passed, N failed"; exits 1 on failure.
import fs from 'node:fs';
import yaml from 'js-yaml';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const [docPath, samplesPath] = process.argv.slice(2);
if (!docPath || !samplesPath) {
  console.error('usage: node validate.mjs OPENAPI.yaml SAMPLES.json');
  process.exit(2);
}
const doc = yaml.load(fs.readFileSync(docPath, 'utf8'));
const input = JSON.parse(fs.readFileSync(samplesPath, 'utf8'));
const samples = Array.isArray(input) ? input : input.samples;
const routes = Array.isArray(input) ? [] : input.routes || [];

const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
addFormats(ajv);
ajv.addSchema(doc, 'openapi');

const esc = (s) => s.replace(/~/g, '~0').replace(/\//g, '~1');
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

// operations: {server, method, template, regex, literal (segments without {}), op}
const ops = [];
for (const [template, item] of Object.entries(doc.paths)) {
  for (const m of METHODS) {
    const op = item[m];
    if (!op) continue;
    const server = (op.tags || []).includes('unit') ? 'unit' : 'hub';
    const re = new RegExp('^' + template.replace(/\{[^}]+\}/g, '[^/]+') + '$');
    const literal = template.split('/').filter((s) => s && !s.startsWith('{')).length;
    ops.push({ server, method: m.toUpperCase(), template, re, literal, op, seen: new Set() });
  }
}

function findOp(server, method, path) {
  const cands = ops.filter((o) => o.server === server && o.method === method && o.re.test(path));
  cands.sort((a, b) => b.literal - a.literal);
  return cands[0] || null;
}

function resolve(obj) {
  // follows a local $ref (components/responses) once or more
  while (obj && obj.$ref) {
    const parts = obj.$ref.replace(/^#\//, '').split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    obj = parts.reduce((o, p) => o[p], doc);
  }
  return obj;
}

let passed = 0;
let failed = 0;
const fail = (msg) => {
  failed++;
  console.log('FAIL ' + msg);
};
const compiled = new Map();

// Every route of the code ({server, method, template}) must be documented.
for (const r of routes) {
  if (ops.some((o) => o.server === r.server && o.method === r.method && o.template === r.template)) passed++;
  else fail(`route ${r.server} ${r.method} ${r.template} (${r.where}) is not in the document`);
}

for (const s of samples) {
  const path = s.path.split('?')[0];
  const what = `${s.server} ${s.method} ${s.path} -> ${s.status}`;
  let o = findOp(s.server, s.method, path);
  // A wrong method is answered by the path's 405: any operation of the path
  // that documents it stands for it.
  if (!o && s.status === 405) {
    o = ops.find((x) => x.server === s.server && x.re.test(path) && (x.op.responses || {})['405']) || null;
  }
  if (!o) {
    fail(`${what}: no such operation in the document`);
    continue;
  }
  const key = String(s.status);
  const responses = o.op.responses || {};
  const rkey = key in responses ? key : `${key[0]}XX` in responses ? `${key[0]}XX` : 'default' in responses ? 'default' : null;
  if (!rkey) {
    fail(`${what}: status ${key} is not documented for ${o.method} ${o.template}`);
    continue;
  }
  o.seen.add(key);
  const resp = resolve(responses[rkey]);
  const ctype = (s.content_type || '').split(';')[0].trim();
  if (!resp.content) {
    if (ctype && s.body !== null && s.body !== '') {
      fail(`${what}: documented without a body, got ${ctype}`);
      continue;
    }
    passed++;
    continue;
  }
  if (!resp.content[ctype]) {
    fail(`${what}: content type '${ctype}' not documented (have ${Object.keys(resp.content).join(', ')})`);
    continue;
  }
  if (ctype !== 'application/json') {
    passed++;
    continue;
  }
  const ptr = `openapi#/paths/${esc(o.template)}/${o.method.toLowerCase()}/responses/${rkey}`;
  const schemaRef = responses[rkey].$ref
    ? `openapi#/${responses[rkey].$ref.replace(/^#\//, '')}/content/application~1json/schema`
    : `${ptr}/content/application~1json/schema`;
  let validate = compiled.get(schemaRef);
  if (!validate) {
    validate = ajv.compile({ $ref: schemaRef });
    compiled.set(schemaRef, validate);
  }
  if (validate(s.body)) {
    passed++;
  } else {
    const errs = validate.errors.map((e) => `${e.instancePath || '/'} ${e.message}${e.params && e.params.additionalProperty ? ` (${e.params.additionalProperty})` : ''}${e.params && e.params.unevaluatedProperty ? ` (${e.params.unevaluatedProperty})` : ''}`);
    fail(`${what}: ${errs.slice(0, 5).join('; ')}\n     body: ${JSON.stringify(s.body).slice(0, 400)}`);
  }
}

// Coverage: every operation exercised, and its documented 2xx seen.
for (const o of ops) {
  const ok = Object.keys(o.op.responses || {}).filter((k) => k.startsWith('2'));
  if (o.seen.size === 0) {
    fail(`coverage: ${o.server} ${o.method} ${o.template} never exercised`);
  } else if (!ok.some((k) => o.seen.has(k))) {
    fail(`coverage: ${o.server} ${o.method} ${o.template}: no success response (${ok.join(', ')}) seen`);
  } else {
    passed++;
  }
}
console.log(`${samples.length} exchanges, ${ops.length} operations`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
