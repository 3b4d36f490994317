// tierscale model router: one base URL for every model, selected by the request body's
// `model` field, the way the OpenAI API does it; and the gateway's authentication. Shipped
// verbatim to every tier that runs the nginx gateway (the Compose gateway and the Kubernetes
// model router); the rendered nginx.conf (templates/gateway/nginx.conf.j2) holds the routing
// table, the accepted key digests and the path allowlist.
//
// nginx only hands the request to a location here: the upstream{} block behind it keeps
// least_conn, the shared zone, passive health checks, keepalive and proxy_next_upstream, and
// the response streams through unbuffered.
//
// Written for both njs builds in use: 0.7.9 (Debian 12's libnginx-mod-http-js) and 0.8.10
// (nginx:1.27.5-alpine): ES5 syntax, Promises, r.requestText, r.subrequest, r.internalRedirect,
// crypto.createHash, fs.readFileSync.

var crypto = require('crypto');
var fs = require('fs');

// $tierscale_routes: {"default": "<upstream>", "models": {"<served name>": "<upstream>", ...},
//                     "servers": {"<upstream>": ["host:port", ...]}, "variants": ["<upstream>__x0", ...],
//                     "affinity": {"<upstream>": {"mode": "session"|"prefix", "chars": N}}}
function table(r) {
    return JSON.parse(r.variables.tierscale_routes);
}

function has(obj, key) {
    return Object.prototype.hasOwnProperty.call(obj, key);
}

// --- authentication (js_set $tierscale_authorized) -----------------------------------------

// Constant time for equal-length strings: every character is compared, no early exit.
function sameDigest(a, b) {
    if (a.length !== b.length) {
        return 0;
    }
    var diff = 0;
    for (var i = 0; i < a.length; i++) {
        diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
    }
    return diff === 0 ? 1 : 0;
}

// vLLM's rule (AuthenticationMiddleware.verify_token): `Authorization: <scheme> <token>`, the
// scheme "bearer" in any case, the token everything after the first space; its SHA-256 must
// equal an accepted key's. Every accepted digest is compared, match or not.
function authorized(r) {
    if (r.variables.tierscale_public === '1') {
        return '1';
    }
    var header = r.headersIn.Authorization;
    if (!header) {
        return '0';
    }
    var space = header.indexOf(' ');
    if (space < 0 || header.slice(0, space).toLowerCase() !== 'bearer') {
        return '0';
    }
    var presented = crypto.createHash('sha256').update(header.slice(space + 1)).digest('hex');
    var accepted = (r.variables.tierscale_key_digests || '').split(' ');
    var ok = 0;
    for (var i = 0; i < accepted.length; i++) {
        if (accepted[i]) {
            ok |= sameDigest(presented, accepted[i]);
        }
    }
    return ok ? '1' : '0';
}

// --- routing ------------------------------------------------------------------------------

// The parsed body, or undefined when there is none to read (empty, not JSON, not an object).
function bodyJson(r) {
    var text;
    try {
        text = r.requestText;
    } catch (e) {
        return undefined;
    }
    if (!text) {
        return undefined;
    }
    try {
        var body = JSON.parse(text);
        return body !== null && typeof body === 'object' ? body : undefined;
    } catch (e) {
        return undefined;
    }
}

// The body's `model`, or undefined when there is none (no body, not a string): those requests
// keep going to the default model, where vLLM answers them itself.
function bodyModel(body) {
    return body && typeof body.model === 'string' ? body.model : undefined;
}

// --- affinity -----------------------------------------------------------------------------

// A message's text: a string, or the text parts of an OpenAI content array.
function contentText(content) {
    if (typeof content === 'string') {
        return content;
    }
    var out = '';
    if (Array.isArray(content)) {
        for (var i = 0; i < content.length; i++) {
            if (content[i] && typeof content[i].text === 'string') {
                out += content[i].text;
            }
        }
    }
    return out;
}

// The prompt's start, as vLLM will see it first: the system (and developer) messages that open
// a chat plus its first user message; the completion `prompt` (its first element when a list).
// Every later turn of a chat starts the same way, so it lands where the earlier turns did.
function promptStart(body, chars) {
    var text = '';
    if (Array.isArray(body.messages)) {
        for (var i = 0; i < body.messages.length && text.length < chars; i++) {
            var m = body.messages[i] || {};
            text += (m.role || '') + '\n' + contentText(m.content) + '\n';
            if (m.role !== 'system' && m.role !== 'developer') {
                break;
            }
        }
    } else if (body.prompt !== undefined) {
        var p = Array.isArray(body.prompt) ? body.prompt[0] : body.prompt;
        text = typeof p === 'string' ? p : (Array.isArray(p) ? p.join(',') : '');
    } else if (typeof body.input === 'string') {
        text = body.input;
    }
    return text.slice(0, chars);
}

// The affinity key of a request, or '' for none (then least_conn): a session (the
// X-Session-Id header, else the body's `user`) for both modes; for prefix, else the prompt's
// start. Hashed, so no prompt text goes further than this function.
function affinityKey(r, body, rule) {
    var key = r.headersIn['X-Session-Id'] || (body && typeof body.user === 'string' ? body.user : '');
    if (key) {
        key = 's:' + key;
    } else if (rule.mode === 'prefix' && body) {
        var start = promptStart(body, rule.chars);
        key = start ? 'p:' + start : '';
    }
    return key ? crypto.createHash('md5').update(key).digest('hex') : '';
}

// Active health: health_prober.sh writes `<upstream> <server>` lines for the replicas whose
// /health failed. The request goes to the variant upstream without them, when one was
// rendered; otherwise (no file, nothing down, all down, or no such variant) to the full one,
// where passive health still applies.
function healthy(r, routes, upstream) {
    var path = r.variables.tierscale_health_file;
    if (!path || !routes.servers || !has(routes.servers, upstream)) {
        return upstream;
    }
    var text;
    try {
        text = fs.readFileSync(path, 'utf8');
    } catch (e) {
        return upstream;
    }
    var servers = routes.servers[upstream];
    var out = [];
    var lines = text.split('\n');
    for (var i = 0; i < lines.length; i++) {
        var parts = lines[i].split(' ');
        if (parts.length === 2 && parts[0] === upstream) {
            var index = servers.indexOf(parts[1]);
            if (index >= 0 && out.indexOf(index) < 0) {
                out.push(index);
            }
        }
    }
    if (!out.length || out.length >= servers.length) {
        return upstream;
    }
    out.sort(function (a, b) { return a - b; });
    var variant = upstream + '__x' + out.join('_');
    return routes.variants.indexOf(variant) >= 0 ? variant : upstream;
}

function sendJson(r, status, value) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify(value));
}

function openaiError(message, type, param, code) {
    return {error: {message: message, type: type, param: param, code: code}};
}

function modelsUri(upstream) {
    return '/_tierscale/models/' + upstream;
}

// The allowlisted POST locations: js_content route; nginx has read the request body (only
// after authentication) before this runs.
function route(r) {
    var routes = table(r);
    var body = bodyJson(r);
    var model = bodyModel(body);
    var upstream;
    if (model === undefined) {
        upstream = routes['default'];
    } else if (has(routes.models, model)) {
        upstream = routes.models[model];
    } else {
        sendJson(r, 404, openaiError(
            'The model `' + model + '` does not exist. Served models: ' + Object.keys(routes.models).join(', ') + '.',
            'invalid_request_error', 'model', 'model_not_found'));
        return;
    }
    var target = healthy(r, routes, upstream);
    if (routes.affinity && has(routes.affinity, upstream)) {
        var key = affinityKey(r, body, routes.affinity[upstream]);
        if (key) {
            // The affinity twin of the healthy upstream: the key's replica on the ring.
            r.variables.tierscale_affinity_key = key;
            target += '__aff';
        }
    }
    r.internalRedirect('@' + target);
}

// location = /v1/models : every served model, in vLLM's own shape, from each model's replicas
// (so `max_model_len`, `root`, adapters are theirs); a model whose replicas are all unreachable
// is still listed from the rendered card ($tierscale_model_cards).
function models(r) {
    var routes = table(r);
    var cards = JSON.parse(r.variables.tierscale_model_cards);
    var names = Object.keys(routes.models);
    var asks = names.map(function (name) {
        var upstream = routes.models[name];
        return r.subrequest(modelsUri(healthy(r, routes, upstream)), {method: 'GET'});
    });
    Promise.all(asks).then(function (replies) {
        var data = [];
        var answered = 0;
        for (var i = 0; i < replies.length; i++) {
            var reply = replies[i];
            var listed = null;
            if (reply.status === 200) {
                try {
                    listed = JSON.parse(reply.responseText || reply.responseBody).data;
                } catch (e) {
                    listed = null;
                }
            }
            if (listed && listed.length) {
                answered++;
                data = data.concat(listed);
            } else {
                data.push(cards[names[i]]);
            }
        }
        if (!answered) {
            sendJson(r, 502, openaiError('no model replica is reachable', 'server_error', null, 'bad_gateway'));
            return;
        }
        sendJson(r, 200, {object: 'list', data: data});
    }).catch(function (e) {
        sendJson(r, 502, openaiError('model router: ' + e, 'server_error', null, 'bad_gateway'));
    });
}

// location = /gateway/ready : 200 when every model has at least one replica whose /health
// answers 200 within the probe timeout, else 503. Unauthenticated, so it says only how many.
function ready(r) {
    var routes = table(r);
    var upstreams = [];
    var asks = [];
    var byUpstream = {};
    var names = Object.keys(routes.models);
    for (var i = 0; i < names.length; i++) {
        var upstream = routes.models[names[i]];
        if (!has(byUpstream, upstream)) {
            byUpstream[upstream] = 0;
            upstreams.push(upstream);
        }
    }
    var probes = JSON.parse(r.variables.tierscale_ready_probes);
    for (var j = 0; j < probes.length; j++) {
        asks.push(r.subrequest('/_tierscale/ready/' + probes[j], {method: 'GET'}));
    }
    Promise.all(asks).then(function (replies) {
        for (var k = 0; k < replies.length; k++) {
            if (replies[k].status === 200) {
                byUpstream[probes[k].split('/')[0]]++;
            }
        }
        var readyCount = upstreams.filter(function (u) { return byUpstream[u] > 0; }).length;
        sendJson(r, readyCount === upstreams.length ? 200 : 503,
                 {ready: readyCount === upstreams.length, models: upstreams.length, models_ready: readyCount});
    }).catch(function (e) {
        sendJson(r, 503, {ready: false, error: 'readiness probe failed'});
    });
}

export default {authorized: authorized, route: route, models: models, ready: ready};
