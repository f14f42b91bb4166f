// The store owner's page: plain JS over the JSON API. The session cookie goes with every same-origin request;
// writes carry the CSRF token (readable cookie) in X-CSRF-Token.
"use strict";

const T = JSON.parse(document.getElementById("i18n").textContent);
const fmt = (key, values) => (T[key] || key).replace(/\{(\w+)\}/g, (_, k) => values[k] ?? "");
const $ = (id) => document.getElementById(id);

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)mostrador_csrf=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || "HTTP " + status);
    this.status = status;
    const details = body && body.error && body.error.details;
    this.details = Array.isArray(details) ? details : [];
    this.reason = details && !Array.isArray(details) ? details.reason : null;
  }
}

async function api(method, path, body, extraHeaders = {}) {
  const headers = { Accept: "application/json", ...extraHeaders };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.status === 401 && !path.startsWith("/v1/auth/")) {
    window.location.assign("/");
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// A 422's details name fields like "body.name": show each message next to its input.
function showFieldErrors(form, prefix, error) {
  form.querySelectorAll(".field-error").forEach((p) => (p.textContent = ""));
  form.querySelectorAll("[aria-invalid]").forEach((i) => i.removeAttribute("aria-invalid"));
  let shown = false;
  for (const detail of error.details || []) {
    const field = String(detail.field || "").split(".").pop();
    const input = form.querySelector(`[name="${field}"]`);
    const slot = input && $(input.id + "-error");
    if (slot) {
      slot.textContent = detail.message;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", slot.id);
      if (!shown) input.focus();
      shown = true;
    }
  }
  return shown;
}

function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

// Why a store is down, from the API's reason code (never from the reason's words, which are for people).
function reasonText(data) {
  const code = data.reason_code || data.status_reason_code;
  if (code === "qr_expired") return T.qr_expired;
  if (code === "banned") return T.banned;
  if (code === "logged_out") return T.logged_out;
  return fmt("conn_error", { reason: data.reason || data.status_reason || "" });
}

// An Idempotency-Key: crypto.randomUUID exists only in secure contexts, getRandomValues everywhere.
function newKey() {
  if (window.crypto.randomUUID) return window.crypto.randomUUID();
  const bytes = window.crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function statusText(status) {
  return T["status_" + status] || status;
}

function badge(el, status) {
  el.textContent = statusText(status);
  el.className = "badge badge-" + status;
}

// "+5491155550000" -> "+54 9 11 5555-0000" for Argentine mobiles; other numbers keep their digits.
function prettyPhone(phone) {
  const m = /^\+549(11)(\d{4})(\d{4})$/.exec(phone || "");
  return m ? `+54 9 ${m[1]} ${m[2]}-${m[3]}` : phone || "";
}

let me = null;
async function loadMe() {
  me = await api("GET", "/v1/users/me");
  if (!me.scopes.includes("stores:write")) {
    document.querySelectorAll("[data-write]").forEach((el) => (el.hidden = true));
    const note = $("read-only");
    if (note) note.hidden = false;
  }
  return me;
}
const canWrite = () => me && me.scopes.includes("stores:write");

// --- home: log in / sign up -------------------------------------------------------------------------------
async function logIn(email, password) {
  await api("POST", "/v1/auth/login", { email, password, cookie: true });
  window.location.assign("/app");
}

function initHome() {
  const login = $("login-form");
  login.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { email, password } = formData(login);
    $("login-error").textContent = "";
    try {
      await logIn(email, password);
    } catch (error) {
      $("login-error").textContent = error.status === 401 ? T.wrong_login : error.message;
    }
  });
  const signup = $("signup-form");
  signup.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = formData(signup);
    $("signup-error").textContent = "";
    try {
      await api("POST", "/v1/auth/signup", data);
      await logIn(data.email, data.password);
    } catch (error) {
      const fields = { business_name: "signup-business", email: "signup-email", password: "signup-password" };
      let shown = false;
      signup.querySelectorAll(".field-error").forEach((p) => (p.textContent = ""));
      for (const detail of error.details || []) {
        const id = fields[String(detail.field || "").split(".").pop()];
        if (id) {
          $(id + "-error").textContent = detail.message;
          $(id).setAttribute("aria-invalid", "true");
          shown = true;
        }
      }
      if (!shown) $("signup-error").textContent = error.message || T.error_generic;
    }
  });
}

// --- dashboard ----------------------------------------------------------------------------------------------
function storeItem(store) {
  const li = document.createElement("li");
  li.dataset.storeId = store.id;
  const a = document.createElement("a");
  a.href = "/app/stores/" + store.id;
  a.textContent = store.name;
  const b = document.createElement("span");
  badge(b, store.status);
  li.append(a, " ", b);
  return li;
}

async function initDashboard() {
  await loadMe();
  const list = $("stores");
  const refresh = async () => {
    const page = await api("GET", "/v1/stores?limit=100");
    list.replaceChildren(...page.items.map(storeItem));
    $("no-stores").hidden = page.items.length > 0;
  };
  await refresh();
  setInterval(refresh, 3000); // the badges follow the stores' status
  if (me.scopes.includes("api_keys:read")) initKeys();
  if (me.scopes.includes("members:write")) initTeam();
  initMembers();
  const form = $("store-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const store = await api("POST", "/v1/stores", formData(form));
      window.location.assign("/app/stores/" + store.id);
    } catch (error) {
      if (!showFieldErrors(form, "store", error)) $("store-name-error").textContent = error.message;
    }
  });
}

function removable(text, label, onRemove) {
  const li = document.createElement("li");
  li.textContent = text + " ";
  if (onRemove) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.textContent = label;
    button.setAttribute("aria-label", `${label}: ${text}`);
    button.addEventListener("click", onRemove);
    li.append(button);
  }
  return li;
}

async function initKeys() {
  $("keys-section").hidden = false;
  const writable = me.scopes.includes("api_keys:write");
  const render = async () => {
    const page = await api("GET", "/v1/api-keys");
    $("keys").replaceChildren(
      ...page.items.map((key) =>
        removable(`${key.name} (mst_${key.prefix}_…)`, T.revoke, writable && (async () => {
          await api("DELETE", "/v1/api-keys/" + key.id);
          render();
        })),
      ),
    );
  };
  const form = $("key-form");
  form.hidden = !writable;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await api("POST", "/v1/api-keys", formData(form));
      $("key-value").textContent = created.key;
      $("key-created").hidden = false;
      form.reset();
      render();
    } catch (error) {
      if (!showFieldErrors(form, "key", error)) $("key-name-error").textContent = error.message;
    }
  });
  render();
}

async function initTeam() {
  $("team-section").hidden = false;
  const render = async () => {
    const page = await api("GET", "/v1/invites");
    $("invites").replaceChildren(
      ...page.items.map((invite) =>
        removable(`${invite.email} (${T["role_" + invite.role] || invite.role})`, T.cancel_invite, async () => {
          await api("DELETE", "/v1/invites/" + invite.id);
          render();
        }),
      ),
    );
  };
  const form = $("invite-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await api("POST", "/v1/invites", formData(form));
      $("invite-url").textContent = created.url;
      $("invite-created").hidden = false;
      form.reset();
      render();
    } catch (error) {
      if (!showFieldErrors(form, "invite", error)) $("invite-email-error").textContent = error.message;
    }
  });
  render();
}

// Members: every member sees the list; owners and admins change roles and remove (not themselves; an admin
// leaves owners alone). The API enforces the same rules; the page only offers what would be accepted.
const ROLES = ["owner", "admin", "viewer"];

function memberItem(member, render) {
  const li = document.createElement("li");
  const self = member.id === me.id;
  const writable = me.scopes.includes("members:write") && !self;
  const ownerRules = me.role === "owner" || (member.role !== "owner");
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = member.email + (self ? " " + T.member_you : "");
  li.append(who);
  if (!writable || !ownerRules) {
    const role = document.createElement("span");
    role.className = "role";
    role.textContent = T["role_" + member.role] || member.role;
    li.append(role);
    return li;
  }
  const label = fmt("role_of", { email: member.email });
  const select = document.createElement("select");
  select.setAttribute("aria-label", label);
  select.dataset.userId = member.id;
  for (const role of ROLES) {
    if (role === "owner" && me.role !== "owner") continue;
    const option = document.createElement("option");
    option.value = role;
    option.textContent = T["role_" + role] || role;
    option.selected = role === member.role;
    select.append(option);
  }
  select.addEventListener("change", async () => {
    $("members-error").textContent = "";
    try {
      await api("PATCH", "/v1/users/" + member.id, { role: select.value });
    } catch (error) {
      $("members-error").textContent = error.message;
    }
    render();
  });
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "secondary";
  remove.textContent = T.remove;
  remove.setAttribute("aria-label", `${T.remove}: ${member.email}`);
  remove.addEventListener("click", async () => {
    if (!window.confirm(fmt("remove_confirm", { email: member.email }))) return;
    $("members-error").textContent = "";
    try {
      await api("DELETE", "/v1/users/" + member.id);
    } catch (error) {
      $("members-error").textContent = error.message;
    }
    render();
  });
  const actions = document.createElement("span");
  actions.className = "actions";
  actions.append(select, remove);
  li.append(actions);
  return li;
}

async function initMembers() {
  $("members-section").hidden = false;
  const render = async () => {
    const members = [];
    let cursor = null;
    do {
      const page = await api("GET", "/v1/users?limit=100" + (cursor ? "&cursor=" + cursor : ""));
      members.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    $("members").replaceChildren(...members.map((member) => memberItem(member, render)));
  };
  render();
}

// --- store page -----------------------------------------------------------------------------------------
function initStore() {
  const root = $("store");
  const storeId = root.dataset.storeId;
  const base = "/v1/stores/" + storeId;
  let expiresAt = null;
  let status = null;

  const show = (id, visible) => ($(id).hidden = !visible);
  function problem(text, retry = true) {
    $("problem-text").textContent = text;
    show("problem", Boolean(text));
    show("retry", Boolean(text) && retry && canWrite());
  }

  function onStatus(data) {
    status = data.status;
    badge($("status-badge"), status);
    const connected = status === "connected";
    show("connected", connected);
    if (connected) $("connected").textContent = fmt("connected_as", { phone: prettyPhone(data.phone_number) });
    show("qr-box", status === "linking");
    show("link-button", status === "unlinked" && canWrite());
    const simLogout = $("sim-logout");
    if (simLogout) simLogout.hidden = !(connected && canWrite());
    const simScan = $("sim-scan");
    if (simScan) simScan.hidden = !(status === "linking" && canWrite()); // only a showing code can be scanned
    if (status === "logged_out" || status === "error") problem(reasonText(data));
    else if (status === "reconnecting") problem(T.reconnecting, false); // it retries by itself
    else problem("");
    if (status !== "linking") expiresAt = null;
  }

  function onQr(data) {
    expiresAt = new Date(data.expires_at);
    // The SVG of the current code; the query string only defeats the image cache between codes.
    $("qr").src = `${base}/qr?format=svg&c=${encodeURIComponent(data.code.slice(-12))}`;
    $("qr").dataset.code = data.code;
    show("qr-box", true);
    tick();
  }

  function tick() {
    if (!expiresAt) {
      $("countdown").textContent = status === "linking" ? T.waiting_qr : "";
      return;
    }
    const left = Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
    $("countdown").textContent = fmt("expires_in", { s: left });
  }
  setInterval(tick, 1000);

  // The session manager often answers (status and QR over the event stream) before the POST's own answer is
  // read: that answer is older news then, and must not put the page back to "not linked".
  let statusEvents = 0;
  async function link() {
    problem("");
    const seen = statusEvents;
    try {
      const answer = await api("POST", base + "/link");
      if (statusEvents === seen) onStatus(answer);
    } catch (error) {
      problem(error.message);
    }
  }
  $("link-button").addEventListener("click", link);
  $("retry").addEventListener("click", link);

  $("pairing-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    try {
      const result = await api("POST", base + "/pairing-code", formData(form));
      $("pairing-code").textContent = result.code;
      show("pairing-result", true);
    } catch (error) {
      if (!showFieldErrors(form, "pairing", error)) $("pairing-phone-error").textContent = error.message;
    }
  });

  function listen() {
    // EventSource sends the session cookie; it reconnects by itself after a dropped connection.
    const events = new EventSource(base + "/events");
    events.addEventListener("status", (e) => {
      statusEvents += 1;
      onStatus(JSON.parse(e.data));
    });
    events.addEventListener("qr", (e) => {
      statusEvents += 1;
      onQr(JSON.parse(e.data));
    });
    events.addEventListener("pairing_code", (e) => {
      const data = JSON.parse(e.data);
      $("pairing-code").textContent = data.code;
      show("pairing-result", true);
    });
  }

  async function renderLinks() {
    const page = await api("GET", base + "/onboarding-links");
    $("links").replaceChildren(
      ...page.items.map((link) => {
        const li = document.createElement("li");
        li.textContent = `${T.expires}: ${new Date(link.expires_at).toLocaleString()} `;
        if (canWrite()) {
          const revoke = document.createElement("button");
          revoke.type = "button";
          revoke.className = "secondary";
          revoke.textContent = T.revoke;
          revoke.addEventListener("click", async () => {
            await api("DELETE", `${base}/onboarding-links/${link.id}`);
            renderLinks();
          });
          li.append(revoke);
        }
        return li;
      }),
    );
  }
  $("new-link").addEventListener("click", async () => {
    const created = await api("POST", base + "/onboarding-links", {});
    $("link-url").href = created.url;
    $("link-url").textContent = created.url;
    show("link-created", true);
    renderLinks();
  });

  initInbox(storeId);

  (async () => {
    await loadMe();
    const store = await api("GET", base);
    $("store-name").textContent = store.name;
    document.title = store.name + " · Mostrador";
    onStatus(store);
    listen();
    renderLinks();
    initBotForm(base); // after loadMe: whether the form may be changed depends on the role
    if (root.dataset.simulator === "true") initSimulator(storeId);
  })();
}

// --- bot set-up ---------------------------------------------------------------------------------------------
// One form per kind: language and greeting, then the kind's main lists as rows of fields (menu options,
// services and opening hours, catalog). Settings without a field here (a submenu, slot length, currency...) are
// kept as they are. The API validates; each error goes next to the field its path names.
const BOT_EXAMPLES = {
  echo: {},
  menu: {
    options: [
      { title: "Horarios", keywords: ["horario"], answer: "Abrimos de 9 a 18." },
      { title: "Hablar con una persona", handoff: true },
    ],
  },
  booking: {
    services: [{ name: "Corte", duration_minutes: 30 }],
    opening_hours: { mon: [["09:00", "13:00"]], tue: [["09:00", "13:00"]] },
  },
  orders: { catalog: [{ id: "1", name: "Medialuna", price_cents: 50000 }] },
};
const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

// Each list: its container, the config key, the legend of a row, and its fields (key, label, how to show the
// stored value, how to read it back: a value the API must refuse is sent as typed, so it says why).
const numberOrTyped = (text) => (text.trim() === "" ? null : Number.isFinite(Number(text)) ? Number(text) : text);
const LISTS = {
  options: {
    container: "menu-options",
    legend: "option_n",
    fields: [
      { key: "title", label: "option_title" },
      {
        key: "keywords",
        label: "option_keywords",
        show: (v) => (v || []).join(", "),
        read: (t) => t.split(",").map((w) => w.trim()).filter(Boolean),
      },
      { key: "answer", label: "option_answer", type: "textarea", read: (t) => (t.trim() ? t : null) },
      { key: "handoff", label: "option_handoff", type: "checkbox" },
    ],
  },
  services: {
    container: "booking-services",
    legend: "service_n",
    fields: [
      { key: "name", label: "service_name" },
      { key: "duration_minutes", label: "service_minutes", inputmode: "numeric", read: numberOrTyped },
    ],
  },
  catalog: {
    container: "orders-catalog",
    legend: "item_n",
    fields: [
      { key: "id", label: "item_id" },
      { key: "name", label: "item_name" },
      {
        key: "price_cents",
        label: "item_price",
        inputmode: "decimal",
        show: (v) => (v === undefined || v === null ? "" : (v / 100).toFixed(2)),
        read: (t) => {
          const n = Number(t.trim().replace(",", "."));
          return t.trim() !== "" && Number.isFinite(n) ? Math.round(n * 100) : t;
        },
      },
      { key: "category", label: "item_category", read: (t) => (t.trim() ? t : null) },
    ],
  },
};
const KIND_LISTS = { menu: ["options"], booking: ["services"], orders: ["catalog"], echo: [] };

let rowSeq = 0;
function addRow(list, value = {}) {
  const spec = LISTS[list];
  const container = $(spec.container);
  const row = document.createElement("fieldset");
  row.className = "row";
  row.id = "row-" + ++rowSeq;
  const own = spec.fields.map((f) => f.key);
  row.dataset.extra = JSON.stringify(Object.fromEntries(Object.entries(value).filter(([k]) => !own.includes(k))));
  const legend = document.createElement("legend");
  const rowError = document.createElement("p");
  rowError.className = "field-error";
  rowError.id = row.id + "-error";
  row.append(legend, rowError);
  for (const f of spec.fields) {
    const id = `${row.id}-${f.key}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = T[f.label];
    const input = document.createElement(f.type === "textarea" ? "textarea" : "input");
    input.id = id;
    input.dataset.key = f.key;
    if (f.type === "checkbox") {
      input.type = "checkbox";
      input.checked = Boolean(value[f.key]);
      label.className = "check";
      label.prepend(input, " ");
      row.append(label);
    } else {
      if (f.type === "textarea") input.rows = 2;
      if (f.inputmode) input.inputMode = f.inputmode;
      input.autocomplete = "off";
      const shown = f.show ? f.show(value[f.key]) : value[f.key];
      input.value = shown === undefined || shown === null ? "" : String(shown);
      row.append(label, input);
    }
    const error = document.createElement("p");
    error.className = "field-error";
    error.id = id + "-error";
    row.append(error);
  }
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "secondary";
  remove.dataset.write = "";
  remove.hidden = !canWrite();
  remove.addEventListener("click", () => {
    row.remove();
    numberRows(list);
  });
  row.append(remove);
  container.append(row);
  numberRows(list);
  row.querySelectorAll("input, textarea").forEach((el) => (el.disabled = !canWrite()));
  return row;
}

// Rows carry their place in the config ("options.1", "options.1.title") so that an error's path finds them.
function numberRows(list) {
  const spec = LISTS[list];
  [...$(spec.container).children].forEach((row, i) => {
    row.dataset.path = `${list}.${i}`;
    const name = fmt(spec.legend, { n: i + 1 });
    row.querySelector("legend").textContent = name;
    const remove = row.querySelector("button");
    remove.textContent = T.remove;
    remove.setAttribute("aria-label", `${T.remove}: ${name}`);
    row.querySelectorAll("[data-key]").forEach((el) => (el.dataset.path = `${list}.${i}.${el.dataset.key}`));
  });
}

function readRows(list) {
  const spec = LISTS[list];
  return [...$(spec.container).children].map((row) => {
    const item = JSON.parse(row.dataset.extra);
    for (const f of spec.fields) {
      const el = row.querySelector(`[data-key="${f.key}"]`);
      item[f.key] = f.type === "checkbox" ? el.checked : f.read ? f.read(el.value) : el.value;
    }
    return item;
  });
}

// Opening hours: "09:00-13:00, 16:00-20:00" per day; a day left empty is closed.
const showHours = (ranges) =>
  (ranges || []).map((r) => (Array.isArray(r) ? r.join("-") : `${r.start}-${r.end}`)).join(", ");
const readHours = (text) =>
  text.split(",").map((p) => p.trim()).filter(Boolean).map((p) => p.split("-").map((x) => x.trim()));

async function initBotForm(base) {
  const form = $("bot-form");
  const kind = $("bot-kind");
  let current = await api("GET", base + "/bot");
  const configFor = (k) => (k === current.kind ? current.config : BOT_EXAMPLES[k]);

  function fill(k, config) {
    $("bot-language").value = config.language || "es";
    $("bot-greeting").value = config.greeting || "";
    for (const list of Object.keys(LISTS)) {
      $(LISTS[list].container).replaceChildren();
      if (KIND_LISTS[k].includes(list)) (config[list] || []).forEach((item) => addRow(list, item));
    }
    for (const day of WEEKDAYS) $("hours-" + day).value = showHours((config.opening_hours || {})[day]);
    $("bot-settings").hidden = k === "echo";
    form.querySelectorAll("fieldset[data-kind]").forEach((fs) => (fs.hidden = fs.dataset.kind !== k));
    clearErrors();
  }

  function clearErrors() {
    form.querySelectorAll(".field-error").forEach((p) => (p.textContent = ""));
    form.querySelectorAll("[aria-invalid]").forEach((el) => {
      el.removeAttribute("aria-invalid");
      el.removeAttribute("aria-errormessage");
    });
  }

  function read(k) {
    if (k === "echo") return {};
    const config = { ...configFor(k) }; // what this form does not show is kept
    config.language = $("bot-language").value;
    const greeting = $("bot-greeting").value.trim();
    if (greeting) config.greeting = greeting;
    else delete config.greeting;
    for (const list of KIND_LISTS[k]) config[list] = readRows(list);
    if (k === "booking") {
      config.opening_hours = {};
      for (const day of WEEKDAYS) {
        const ranges = readHours($("hours-" + day).value);
        if (ranges.length) config.opening_hours[day] = ranges;
      }
    }
    return config;
  }

  // "body.config.options.0.title" -> the title of option 1; a deeper path (a submenu, "opening_hours.mon.0.start")
  // goes to the nearest field or row shown; what names no field goes under the form.
  function showError(detail) {
    const parts = String(detail.field || "").split(".");
    if (parts[1] === "kind") return place($("bot-kind"), detail.message);
    const path = parts[1] === "config" ? parts.slice(2) : [];
    for (let n = path.length; n > 0; n -= 1) {
      const at = path.slice(0, n).join(".");
      const rest = path.slice(n).join(".");
      const message = rest ? `${rest}: ${detail.message}` : detail.message;
      const target = [...form.querySelectorAll(`[data-path="${at}"]`)].find((el) => !el.closest("[hidden]"));
      if (target) return place(target, message);
      const slot = [...form.querySelectorAll(`[data-path-slot="${at}"]`)].find((el) => !el.closest("[hidden]"));
      if (slot) return append(slot, message);
    }
    append($("bot-config-error"), path.length ? `${path.join(".")}: ${detail.message}` : detail.message);
  }
  function append(slot, message) {
    message = message.replace(/^Value error, /, ""); // pydantic's prefix for a validator's own words
    slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message;
  }
  function place(el, message) {
    const slot = $(el.id + "-error");
    append(slot, message);
    if (el.tagName !== "FIELDSET") {
      el.setAttribute("aria-invalid", "true");
      el.setAttribute("aria-errormessage", slot.id);
      const hint = el.getAttribute("aria-describedby") || "";
      if (!hint.includes(slot.id)) el.setAttribute("aria-describedby", `${hint} ${slot.id}`.trim());
    }
  }

  kind.value = current.kind;
  fill(current.kind, current.config);
  kind.addEventListener("change", () => {
    fill(kind.value, configFor(kind.value));
    $("bot-saved").textContent = "";
  });
  for (const [button, list] of [["add-option", "options"], ["add-service", "services"], ["add-item", "catalog"]]) {
    $(button).addEventListener("click", () => {
      const row = addRow(list);
      row.querySelector("input, textarea").focus();
    });
  }
  // The kind stays disabled (as rendered) until the store's bot is loaded, and for a role that cannot change it.
  form.querySelectorAll("select, textarea, input").forEach((el) => (el.disabled = !canWrite()));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    $("bot-saved").textContent = "";
    clearErrors();
    try {
      current = await api("PUT", base + "/bot", { kind: kind.value, config: read(kind.value) });
      fill(current.kind, current.config);
      $("bot-saved").textContent = T.saved;
    } catch (error) {
      if (error.details.length) error.details.forEach(showError);
      else append($("bot-config-error"), error.message);
      const first = form.querySelector("[aria-invalid]") || [...form.querySelectorAll(".field-error")]
        .find((p) => p.textContent)?.closest("fieldset")?.querySelector("input, textarea");
      if (first) first.focus();
    }
  });
}

// --- conversations: a small inbox ---------------------------------------------------------------------------
// The chats from the history API, unanswered first; the open chat's messages; pause or resume the bot; reply as
// a person (which pauses the bot in that chat).
function initInbox(storeId) {
  const base = "/v1/stores/" + storeId;
  let chats = [];
  let openId = null;
  let renderSeq = 0;
  const openChat = () => chats.find((c) => c.id === openId) || null;
  const chatName = (c) => c.customer_name || prettyPhone(c.chat);

  async function refresh() {
    let page;
    try {
      page = await api("GET", base + "/conversations?limit=50");
    } catch {
      return;
    }
    // The API lists newest activity first; unanswered chats go before the rest, each group in that order.
    chats = [...page.items.filter((c) => c.unread_count > 0), ...page.items.filter((c) => c.unread_count === 0)];
    $("no-conversations").hidden = chats.length > 0;
    if (!openChat()) openId = chats.length ? chats[0].id : null;
    renderList();
    await renderThread();
  }

  function renderList() {
    const focused = document.activeElement && document.activeElement.dataset.chatId;
    $("chat-list").replaceChildren(
      ...chats.map((chat) => {
        const li = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "chat-item";
        button.dataset.chatId = chat.id;
        if (chat.id === openId) button.setAttribute("aria-current", "true");
        const name = document.createElement("span");
        name.className = "chat-name";
        name.textContent = chatName(chat);
        const last = document.createElement("span");
        last.className = "chat-last";
        last.textContent = (chat.last_message && chat.last_message.text) || "";
        button.append(name);
        if (chat.unread_count > 0) {
          const unread = document.createElement("span");
          unread.className = "unread";
          unread.textContent = fmt("unread", { n: chat.unread_count });
          button.append(" ", unread);
        }
        if (chat.bot_paused) {
          const paused = document.createElement("span");
          paused.className = "paused";
          paused.textContent = T.paused;
          button.append(" ", paused);
        }
        button.append(last);
        button.addEventListener("click", () => {
          openId = chat.id;
          renderList();
          renderThread();
        });
        li.append(button);
        return li;
      }),
    );
    if (focused) {
      const again = document.querySelector(`[data-chat-id="${focused}"]`);
      if (again) again.focus();
    }
  }

  async function renderThread() {
    const chat = openChat();
    $("thread").hidden = !chat;
    if (!chat) return;
    const seq = ++renderSeq;
    $("thread-title").textContent = chatName(chat);
    $("thread-bot").textContent = chat.bot_paused ? T.bot_off : T.bot_on;
    $("thread-bot").className = "bot-state" + (chat.bot_paused ? " paused" : "");
    $("bot-toggle").textContent = chat.bot_paused ? T.resume : T.pause;
    let page;
    try {
      page = await api("GET", `${base}/messages?chat=${encodeURIComponent(chat.chat)}&limit=50`);
    } catch {
      return;
    }
    if (seq !== renderSeq) return; // another chat was opened meanwhile
    $("thread-messages").replaceChildren(
      // In the order they happened on WhatsApp (a reply's time is its sending); replies written in one
      // transaction share their creation time, so that alone would not order them.
      ...page.items
        .reverse()
        .map((message, i) => ({ message, i, at: Date.parse(message.whatsapp_timestamp || message.created_at) }))
        .sort((a, b) => a.at - b.at || a.i - b.i)
        .map(({ message }) => {
          const li = document.createElement("li");
          li.className = message.direction === "in" ? "from-customer" : "from-store";
          const who = document.createElement("span");
          who.className = "who";
          who.textContent = (message.direction === "in" ? T.customer : T.bot) + ": ";
          li.append(who, message.text || `[${message.type}]`);
          return li;
        }),
    );
  }

  $("bot-toggle").addEventListener("click", async () => {
    const chat = openChat();
    if (!chat) return;
    await api("PATCH", `${base}/conversations/${chat.id}`, { bot_paused: !chat.bot_paused });
    await refresh();
  });

  const form = $("reply-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chat = openChat();
    if (!chat) return;
    const text = $("reply-text").value;
    // One key per draft: a retry after a lost answer sends nothing twice; a new draft gets a new key.
    if (form.dataset.draft !== text) {
      form.dataset.draft = text;
      form.dataset.key = newKey();
    }
    form.querySelectorAll(".field-error").forEach((p) => (p.textContent = ""));
    $("reply-text").removeAttribute("aria-invalid");
    try {
      await api("POST", base + "/messages", { to: chat.chat, text }, { "Idempotency-Key": form.dataset.key });
      $("reply-text").value = "";
      delete form.dataset.draft;
      await refresh();
    } catch (error) {
      if (!showFieldErrors(form, "reply", error)) {
        $("reply-text-error").textContent = error.message;
        $("reply-text").setAttribute("aria-invalid", "true");
      }
    }
  });

  refresh();
  setInterval(refresh, 2000);
}

// --- simulated phone ----------------------------------------------------------------------------------------
function initSimulator(storeId) {
  const sim = "/v1/sim/stores/" + storeId;
  const chat = $("sim-chat");
  const sent = [];
  $("sim-scan").addEventListener("click", async () => {
    try {
      await api("POST", sim + "/scan", {});
    } catch (error) {
      $("sim-error").textContent = error.message;
    }
  });
  $("sim-logout").addEventListener("click", () => api("POST", sim + "/fault", { kind: "logout" }));
  const form = $("sim-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = formData(form);
    $("sim-error").textContent = "";
    try {
      await api("POST", sim + "/inbound", { from: data.from, text: data.text });
      sent.push({ text: data.text, at: Date.now() });
      $("sim-text").value = "";
      poll();
    } catch (error) {
      $("sim-error").textContent = error.message;
    }
  });
  async function poll() {
    const from = $("sim-from").value;
    let replies = [];
    try {
      replies = (await api("GET", `${sim}/outbound?chat=${encodeURIComponent(from)}`)).items;
    } catch {
      replies = [];
    }
    const lines = [
      ...sent.map((m) => ({ mine: true, text: m.text, at: m.at })),
      ...replies.map((r) => ({ mine: false, text: r.text, at: Date.parse(r.timestamp) })),
    ].sort((a, b) => a.at - b.at);
    chat.replaceChildren(
      ...lines.map((line) => {
        const li = document.createElement("li");
        li.className = line.mine ? "from-customer" : "from-store";
        li.textContent = line.text;
        return li;
      }),
    );
  }
  setInterval(poll, 1500);
}

// --- onboarding link page (no login: the token in the path is the credential) -------------------------------
function initOnboard() {
  const base = "/v1/onboarding/" + $("onboard").dataset.token;
  let expiresAt = null;
  let events = null;
  const show = (id, visible) => ($(id).hidden = !visible);
  function gone(doneInstead, error) {
    // Expired, revoked or already used: no QR code, ever again, on this page.
    if (events) events.close();
    show("link-section", false);
    $("qr").removeAttribute("src");
    if (error && error.reason === "expired") $("onboard-gone").textContent = T.onboard_expired;
    show(doneInstead ? "onboard-done" : "onboard-gone", true);
  }
  function onStatus(data) {
    if (data.status === "connected") return gone(true);
    show("link-section", true);
    show("qr-box", data.status === "linking");
    show("link-button", data.status === "unlinked");
    const problem = data.status === "logged_out" || data.status === "error" ? reasonText(data) : "";
    $("problem-text").textContent = problem;
    show("problem", Boolean(problem));
  }
  setInterval(() => {
    if (expiresAt) {
      const left = Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
      $("countdown").textContent = fmt("expires_in", { s: left });
    }
  }, 1000);
  // As on the store page: the event stream may have told newer news than the POST's own answer.
  let statusEvents = 0;
  async function link() {
    const seen = statusEvents;
    try {
      const answer = await api("POST", base + "/link");
      if (statusEvents === seen) onStatus(answer);
    } catch (error) {
      if (error.status === 404) gone(false, error);
    }
  }
  $("link-button").addEventListener("click", link);
  $("retry").addEventListener("click", link);
  (async () => {
    let state;
    try {
      state = await api("GET", base);
    } catch (error) {
      return gone(false, error);
    }
    if (state.store_name) $("onboard-title").textContent = fmt("onboard_title", { store: state.store_name });
    onStatus(state);
    if (state.status === "connected") return;
    events = new EventSource(base + "/events");
    events.addEventListener("status", (e) => {
      statusEvents += 1;
      onStatus(JSON.parse(e.data));
    });
    events.addEventListener("qr", (e) => {
      statusEvents += 1;
      const data = JSON.parse(e.data);
      expiresAt = new Date(data.expires_at);
      $("qr").src = `${base}/qr?format=svg&c=${encodeURIComponent(data.code.slice(-12))}`;
      show("qr-box", true);
    });
    // A link revoked or expired while open: the stream ends and its reconnects get a 404.
    events.addEventListener("error", async () => {
      try {
        await api("GET", base);
      } catch (error) {
        if (error.status === 404) gone(false, error);
      }
    });
  })();
}

// --- invite acceptance --------------------------------------------------------------------------------------
function initInvite() {
  const form = $("accept-form");
  const token = decodeURIComponent(window.location.hash.slice(1));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = formData(form);
    $("accept-error").textContent = "";
    try {
      await api("POST", "/v1/invites/accept", { token, password: data.password });
    } catch (error) {
      if (!showFieldErrors(form, "accept", error)) {
        $("accept-error").textContent = error.status === 404 ? T.invite_gone : error.message;
      }
      return;
    }
    try {
      await logIn(data.email, data.password);
    } catch {
      window.location.assign("/");
    }
  });
}

// --- every page -----------------------------------------------------------------------------------------
document.querySelectorAll("[data-logout]").forEach((button) =>
  button.addEventListener("click", async () => {
    await api("POST", "/v1/auth/logout").catch(() => null);
    window.location.assign("/");
  }),
);

const page = document.querySelector("[data-page]");
if ($("login-form")) initHome();
else if (page && page.dataset.page === "dashboard") initDashboard();
else if (page && page.dataset.page === "store") initStore();
else if (page && page.dataset.page === "onboard") initOnboard();
else if (page && page.dataset.page === "invite") initInvite();
