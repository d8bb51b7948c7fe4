// Validates rendered Kubernetes objects against the API schemas of the npm packages
// kubernetes-models (core groups) and @kubernetes-models/prometheus-operator (monitoring.coreos.com).
// usage: node validate_schemas.mjs NODE_MODULES_DIR FILE.yaml...
// Prints one line per object; exits 1 if any object fails, has a kind no package models, or has a
// field its schema does not name. The packages' validators ignore unknown fields, so each nested
// object is wrapped in a Proxy that records which properties the validator looked up: a field of
// an object the validator read by name (not a free-form map it enumerated) that it never looked
// up is unknown to the schema, e.g. a misspelt `readOnlyRootFilesystm`.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [modules, ...files] = process.argv.slice(2);
const require = createRequire(path.join(modules, "noop.js"));
const yaml = require("js-yaml");

// The module that models `apiVersion`: core "v1", a group "apps/v1", or the operator's CRDs.
function modulePath(apiVersion) {
  if (apiVersion.startsWith("monitoring.coreos.com/")) {
    return path.join(modules, "@kubernetes-models/prometheus-operator", apiVersion, "index.js");
  }
  return path.join(modules, "kubernetes-models", apiVersion, "index.js");
}

// Wraps every nested object of `value` in a recording Proxy; `seen` collects [path, target, state].
function track(value, where, seen) {
  if (value === null || typeof value !== "object") return value;
  const state = { read: new Set(), enumerated: false };
  const target = Array.isArray(value) ? [] : {};
  for (const [k, v] of Object.entries(value)) target[k] = track(v, `${where}/${k}`, seen);
  if (!Array.isArray(value)) seen.push([where, target, state]);
  return new Proxy(target, {
    get(t, key, receiver) {
      if (typeof key === "string") state.read.add(key);
      return Reflect.get(t, key, receiver);
    },
    ownKeys(t) {
      state.enumerated = true;
      return Reflect.ownKeys(t);
    },
  });
}

function unknownFields(seen) {
  const unknown = [];
  for (const [where, target, state] of seen) {
    if (state.enumerated) continue;
    for (const k of Object.keys(target)) if (!state.read.has(k)) unknown.push(`${where}/${k}`);
  }
  return unknown;
}

let failures = 0;
for (const file of files) {
  const objects = yaml.loadAll(readFileSync(file, "utf8")).filter((o) => o !== null);
  if (objects.length === 0) {
    failures++;
    console.log(`FAIL ${file}: no objects`);
  }
  for (const object of objects) {
    const name = `${path.basename(path.dirname(file))}/${path.basename(file)}: ` +
        `${object.apiVersion} ${object.kind} ${object.metadata?.name}`;
    try {
      const models = await import(pathToFileURL(modulePath(object.apiVersion)).href);
      const Model = models[object.kind];
      if (Model === undefined) throw new Error(`no schema for kind ${object.kind}`);
      // The constructor copies its argument deeply: wrap the copy's fields, not the argument's.
      const model = new Model(object);
      const seen = [];
      for (const k of Object.keys(model)) model[k] = track(model[k], k, seen);
      model.validate();
      const unknown = unknownFields(seen);
      if (unknown.length > 0) throw new Error(`fields the schema does not name: ${unknown}`);
      console.log(`ok   ${name}`);
    } catch (e) {
      failures++;
      console.log(`FAIL ${name}: ${e.message}`);
    }
  }
}
process.exit(failures === 0 ? 0 : 1);
