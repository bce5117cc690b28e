// Warden's API page: renders the OpenAPI document next to this page (openapi.json) and sends
// "try it" requests to this server with fetch(). Self-contained: no external code, nothing
// fetched but the document and the requests you send. Served under `default-src 'self'`, so
// everything here builds DOM nodes: no inline handlers, no style attributes, no HTML strings.
'use strict';

(function () {
  const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];
  const FORMATS = {
    uuid: '00000000-0000-0000-0000-000000000000',
    'date-time': new Date().toISOString(),
    uri: 'https://example.com/',
    password: 'a long passphrase',
  };
  let doc = {};

  const $ = (id) => document.getElementById(id);

  // el('div', {class: 'x', onclick: f}, child, 'text', [more]) builds one element.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // Text with `code spans` (the document's descriptions use them); everything stays text.
  function prose(text, tag) {
    const parts = String(text || '').split('`');
    return el(tag || 'p', { class: 'prose' }, parts.map((s, i) => (i % 2 ? el('code', {}, s) : s)));
  }

  // Follows local `$ref`s ("#/components/schemas/X") into the document.
  function deref(value) {
    const seen = new Set();
    while (value && typeof value.$ref === 'string') {
      const ref = value.$ref;
      if (seen.has(ref) || !ref.startsWith('#/')) return {};
      seen.add(ref);
      value = ref.slice(2).split('/')
        .map((s) => decodeURIComponent(s).replace(/~1/g, '/').replace(/~0/g, '~'))
        .reduce((o, k) => (o == null ? undefined : o[k]), doc);
    }
    return value || {};
  }

  const refName = (value) => (value && typeof value.$ref === 'string' ? value.$ref.split('/').pop() : '');

  // The schema with its references inlined (bounded, for display).
  function inline(value, depth) {
    if (Array.isArray(value)) return value.map((v) => inline(v, depth));
    if (!value || typeof value !== 'object') return value;
    if (typeof value.$ref === 'string') {
      return depth > 4 ? { $ref: value.$ref } : inline(deref(value), depth + 1);
    }
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = inline(v, depth);
    return out;
  }

  // A plausible JSON value for a schema: its example, const, default or first enum value, else
  // one built from the type. Objects get their required properties and those with a default
  // or an example (plus the first alternative's required ones, for anyOf/oneOf bodies).
  function example(schema, depth) {
    schema = deref(schema);
    if (depth > 6) return null;
    if ('example' in schema) return schema.example;
    if (Array.isArray(schema.examples) && schema.examples.length) return schema.examples[0];
    if ('const' in schema) return schema.const;
    if ('default' in schema) return schema.default;
    if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
    const alternatives = schema.oneOf || schema.anyOf;
    if (Array.isArray(schema.allOf)) {
      const parts = schema.allOf.map((s) => example(s, depth + 1));
      return Object.assign({}, ...parts.filter((p) => p && typeof p === 'object' && !Array.isArray(p)));
    }
    let type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
    if (!type && schema.properties) type = 'object';
    if (!type && Array.isArray(alternatives) && alternatives.length) return example(alternatives[0], depth + 1);
    switch (type) {
      case 'object': {
        const required = new Set(schema.required || []);
        if (Array.isArray(alternatives) && alternatives.length) {
          (deref(alternatives[0]).required || []).forEach((r) => required.add(r));
        }
        const out = {};
        for (const [name, prop] of Object.entries(schema.properties || {})) {
          const p = deref(prop);
          if (required.has(name) || 'default' in p || 'example' in p || Array.isArray(p.examples)) {
            out[name] = example(p, depth + 1);
          }
        }
        return out;
      }
      case 'array': return schema.items ? [example(schema.items, depth + 1)] : [];
      case 'integer': case 'number': return typeof schema.minimum === 'number' ? schema.minimum : 1;
      case 'boolean': return false;
      case 'string': return FORMATS[schema.format] || 'string';
      default: return null;
    }
  }

  function schemaBlock(label, schema) {
    const name = refName(schema) || (schema && schema.type) || 'schema';
    return el('details', { class: 'schema' },
      el('summary', {}, label, ' ', el('code', {}, name)),
      el('pre', {}, JSON.stringify(inline(schema, 0), null, 2)));
  }

  // Every operation of the document: {method, path, op, params, tags}.
  function operations() {
    const out = [];
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const method of METHODS) {
        const op = item[method];
        if (!op) continue;
        const params = [...(item.parameters || []), ...(op.parameters || [])].map(deref);
        out.push({ method, path, op, params, tags: op.tags && op.tags.length ? op.tags : ['other'] });
      }
    }
    return out;
  }

  // How an operation may be called, in the document's order: 'public' (no requirement, or an
  // empty one: the credential is optional), 'bearer', 'apikey'.
  function accepts(op) {
    const reqs = op.security || doc.security || [];
    if (!reqs.length) return ['public'];
    const kinds = reqs.map((r) => (Object.keys(r).length ? schemeKind(Object.keys(r)[0]) : 'public'));
    return [...new Set(kinds.filter(Boolean))];
  }

  function schemeKind(name) {
    const s = deref(((doc.components || {}).securitySchemes || {})[name]);
    if (s.type === 'http' && String(s.scheme).toLowerCase() === 'bearer') return 'bearer';
    if (s.type === 'apiKey' && s.in === 'header') return 'apikey';
    return '';
  }

  const KIND_LABELS = { public: 'public', bearer: 'bearer', apikey: 'API key' };

  function renderOperation(o) {
    const { method, path, op, params } = o;
    const accepted = accepts(op);
    const body = op.requestBody ? deref(op.requestBody) : null;
    const media = body && body.content ? Object.keys(body.content)[0] : null;
    const id = op.operationId || `${method}-${path}`;

    const paramRows = params.map((p) => el('tr', {},
      el('td', {}, el('code', {}, p.name), p.required ? el('span', { class: 'req' }, ' *') : ''),
      el('td', {}, p.in),
      el('td', {}, (deref(p.schema).type || '') + (deref(p.schema).format ? ` (${deref(p.schema).format})` : '')),
      el('td', {}, prose(p.description, 'span'))));

    const responses = Object.entries(op.responses || {}).map(([status, r]) => {
      const resp = deref(r);
      const [type, content] = Object.entries(resp.content || {})[0] || [];
      return el('li', {},
        el('span', { class: `status s${status[0]}` }, status), ' ', prose(resp.description, 'span'),
        content && content.schema ? schemaBlock(type, content.schema) : '');
    });

    // The "try it" form.
    const inputs = params.filter((p) => ['path', 'query', 'header'].includes(p.in)).map((p) => el('label', {},
      `${p.name} (${p.in})`,
      el('input', { name: `${p.in}:${p.name}`, required: p.in === 'path', placeholder: String(example(p.schema, 0) ?? '') })));
    const credential = el('select', { name: 'credential' },
      el('option', { value: '' }, 'no credential'),
      el('option', { value: 'bearer', selected: accepted[0] === 'bearer' }, 'Bearer token'),
      el('option', { value: 'apikey', selected: accepted[0] === 'apikey' }, 'X-API-Key'));
    const textarea = media ? el('textarea', { name: 'body', rows: 6, spellcheck: 'false' },
      JSON.stringify(example(body.content[media].schema, 0), null, 2)) : null;
    const result = el('div', { class: 'result' });
    const form = el('form', { class: 'try', onsubmit: (e) => { e.preventDefault(); send(o, form, textarea, media, result); } },
      inputs, el('label', {}, 'credential', credential),
      textarea ? el('label', { class: 'wide' }, `body (${media})`, textarea) : '',
      el('button', { type: 'submit' }, 'Send'), result);

    return el('details', { class: 'op', id, 'data-search': `${method} ${path} ${op.summary || ''} ${o.tags.join(' ')} ${id}`.toLowerCase() },
      el('summary', {},
        el('span', { class: `method m-${method}` }, method.toUpperCase()), ' ',
        el('code', { class: 'path' }, path), ' ', el('span', { class: 'summary' }, op.summary || ''),
        el('span', { class: 'auth' }, accepted.map((k) => KIND_LABELS[k]).join(' | '))),
      op.description ? prose(op.description) : '',
      el('p', { class: 'meta' }, 'operationId ', el('code', {}, id)),
      params.length ? el('table', {}, el('tr', {}, ['name', 'in', 'type', 'description'].map((h) => el('th', {}, h))), paramRows) : '',
      body && body.content ? el('div', {}, el('h4', {}, 'Request body', body.required ? ' (required)' : ''),
        ...Object.entries(body.content).map(([type, c]) => schemaBlock(type, c.schema))) : '',
      el('h4', {}, 'Responses'), el('ul', { class: 'responses' }, responses),
      el('h4', {}, 'Try it'), form);
  }

  async function send(o, form, textarea, media, result) {
    result.replaceChildren(el('p', { class: 'note' }, 'Sending…'));
    let path = o.path;
    const query = new URLSearchParams();
    const headers = {};
    for (const p of o.params) {
      const input = form.elements[`${p.in}:${p.name}`];
      const value = input ? input.value : '';
      if (value === '') continue;
      if (p.in === 'path') path = path.replace(`{${p.name}}`, encodeURIComponent(value));
      else if (p.in === 'query') query.append(p.name, value);
      else if (p.in === 'header') headers[p.name] = value;
    }
    const init = { method: o.method.toUpperCase(), headers, credentials: 'omit', cache: 'no-store' };
    if (textarea && textarea.value.trim() !== '') {
      try { JSON.parse(textarea.value); } catch (e) {
        result.replaceChildren(el('p', { class: 'error' }, `The body is not valid JSON: ${e.message}`));
        return;
      }
      headers['Content-Type'] = media;
      init.body = textarea.value;
    }
    const credential = form.elements.credential.value;
    if (credential === 'bearer') headers.Authorization = `Bearer ${$('bearer').value.trim()}`;
    if (credential === 'apikey') headers['X-API-Key'] = $('apikey').value.trim();
    const base = (((doc.servers || [])[0] || {}).url || '/').replace(/\/$/, '');
    const url = base + path + (query.toString() ? `?${query}` : '');
    const started = performance.now();
    try {
      const res = await fetch(url, init);
      const text = await res.text();
      const ms = Math.round(performance.now() - started);
      let shown = text;
      try {
        const json = JSON.parse(text);
        shown = JSON.stringify(json, null, 2);
        // Keep what a login, refresh or key creation returned for the next requests.
        if (res.ok && json && typeof json.access_token === 'string') $('bearer').value = json.access_token;
        if (res.ok && json && typeof json.key === 'string' && json.prefix) $('apikey').value = json.key;
      } catch (_) { /* not JSON: shown as text */ }
      const head = [...res.headers.entries()].map(([k, v]) => `${k}: ${v}`).join('\n');
      result.replaceChildren(
        el('p', {}, el('span', { class: `status s${String(res.status)[0]}` }, res.status), ` ${res.statusText} `,
          el('code', {}, `${init.method} ${url}`), ` ${ms} ms`),
        el('pre', { class: 'headers' }, head),
        el('pre', { class: 'body' }, shown || '(empty body)'));
    } catch (e) {
      result.replaceChildren(el('p', { class: 'error' }, `Request failed: ${e.message}`));
    }
  }

  function render() {
    const info = doc.info || {};
    document.title = `${info.title || 'API'} ${info.version || ''}`.trim();
    $('title').textContent = document.title;
    const ops = operations();
    const tags = [...(doc.tags || [])];
    for (const o of ops) for (const t of o.tags) if (!tags.some((d) => d.name === t)) tags.push({ name: t });
    const main = $('operations');
    main.replaceChildren(...tags.map((tag) => {
      const mine = ops.filter((o) => o.tags.includes(tag.name));
      if (!mine.length) return '';
      return el('section', { class: 'tag' }, el('h2', {}, tag.name),
        tag.description ? prose(tag.description) : '', mine.map(renderOperation));
    }).filter(Boolean));
    openFromHash();
  }

  // /api/v1/docs#operationId opens that operation.
  function openFromHash() {
    const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target && target.tagName === 'DETAILS') { target.open = true; target.scrollIntoView(); }
  }

  function filter() {
    const words = $('filter').value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const section of document.querySelectorAll('section.tag')) {
      let visible = 0;
      for (const op of section.querySelectorAll('details.op')) {
        const hit = words.every((w) => op.dataset.search.includes(w));
        op.classList.toggle('hidden', !hit);
        if (hit) visible += 1;
      }
      section.classList.toggle('hidden', visible === 0);
    }
  }

  document.addEventListener('DOMContentLoaded', async () => {
    $('filter').addEventListener('input', filter);
    window.addEventListener('hashchange', openFromHash);
    $('credentials').addEventListener('submit', (e) => e.preventDefault());
    try {
      const res = await fetch('openapi.json', { cache: 'no-store', credentials: 'omit' });
      if (!res.ok) throw new Error(`openapi.json answered ${res.status}`);
      doc = await res.json();
      render();
    } catch (e) {
      $('operations').replaceChildren(el('p', { class: 'error' }, `Could not load the API description: ${e.message}`));
    }
  });
})();
