// tierscale model router: one base URL for every model, selected by the request body's
// `model` field, the way the OpenAI API does it. Shipped verbatim to every tier that runs the
// nginx gateway (the Compose gateway and the Kubernetes model router); the rendered nginx.conf
// (templates/gateway/nginx.conf.j2) holds the routing table.
//
// nginx only hands the request to a location here: the upstream{} block behind it keeps
// least_conn, the shared zone, passive health checks, keepalive and proxy_next_upstream, and
// the response streams through unbuffered exactly as before.
//
// Written for both njs builds in use: 0.7.9 (Debian 12's libnginx-mod-http-js) and 0.8.10
// (nginx:1.27.5-alpine): ES5 syntax, Promises, r.requestText, r.subrequest, r.internalRedirect.

// $tierscale_routes: {"default": "<upstream>", "models": {"<served name>": "<upstream>", ...}}
function table(r) {
    return JSON.parse(r.variables.tierscale_routes);
}

function has(obj, key) {
    return Object.prototype.hasOwnProperty.call(obj, key);
}

// The body's `model`, or undefined when there is none to read (GET, empty, not JSON, not a
// string): those requests keep going to the default model, where vLLM answers them itself.
function bodyModel(r) {
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
        var model = JSON.parse(text).model;
        return typeof model === 'string' ? model : undefined;
    } catch (e) {
        return undefined;
    }
}

function sendJson(r, status, value) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify(value));
}

function openaiError(message, type, param, code) {
    return {error: {message: message, type: type, param: param, code: code}};
}

// Every model's replicas check the API key themselves; before the router answers on their
// behalf it asks one of them, so an unauthenticated client gets vLLM's own 401, not a list.
function authFailure(reply) {
    return reply.status === 401 || reply.status === 403;
}

function modelsUri(upstream) {
    return '/_tierscale/models/' + upstream;
}

// location / : js_content route; nginx has read the request body before this runs.
function route(r) {
    var routes = table(r);
    var model = bodyModel(r);
    if (model === undefined) {
        r.internalRedirect('@' + routes['default']);
        return;
    }
    if (has(routes.models, model)) {
        r.internalRedirect('@' + routes.models[model]);
        return;
    }
    var served = Object.keys(routes.models);
    r.subrequest(modelsUri(routes['default']), {method: 'GET'}).then(function (reply) {
        if (authFailure(reply)) {
            r.headersOut['Content-Type'] = reply.headersOut['Content-Type'] || 'application/json';
            r.return(reply.status, reply.responseText || reply.responseBody);
            return;
        }
        sendJson(r, 404, openaiError(
            'The model `' + model + '` does not exist. Served models: ' + served.join(', ') + '.',
            'invalid_request_error', 'model', 'model_not_found'));
    }).catch(function (e) {
        sendJson(r, 502, openaiError('model router: ' + e, 'server_error', null, 'bad_gateway'));
    });
}

// location = /v1/models : every served model, in vLLM's own shape, from each model's replicas
// (so `max_model_len`, `root`, adapters are theirs); a model whose replicas are all unreachable
// is still listed from the rendered card ($tierscale_model_cards).
function models(r) {
    var routes = table(r);
    var cards = JSON.parse(r.variables.tierscale_model_cards);
    var names = Object.keys(routes.models);
    var asks = names.map(function (name) {
        return r.subrequest(modelsUri(routes.models[name]), {method: 'GET'});
    });
    Promise.all(asks).then(function (replies) {
        var data = [];
        var answered = 0;
        for (var i = 0; i < replies.length; i++) {
            var reply = replies[i];
            if (authFailure(reply)) {
                r.headersOut['Content-Type'] = reply.headersOut['Content-Type'] || 'application/json';
                r.return(reply.status, reply.responseText || reply.responseBody);
                return;
            }
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

export default {route: route, models: models};
