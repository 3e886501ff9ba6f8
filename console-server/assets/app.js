// The console's only script: live alerts, keyboard triage, screenshot zoom.
// It never builds HTML from captured text: rows sent by the server are
// already escaped there, and everything else is set with textContent.
"use strict";

(function () {
  const role = document.querySelector('meta[name=role]')?.content;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  function toast(text, href) {
    const box = $('#toasts');
    if (!box) return;
    const el = document.createElement('div');
    el.className = 'toast';
    if (href) {
      const a = document.createElement('a');
      a.href = href;
      a.textContent = text;
      el.appendChild(a);
    } else {
      el.textContent = text;
    }
    box.appendChild(el);
    setTimeout(() => el.remove(), 8000);
  }

  function beep() {
    try {
      const ctx = new AudioContext();
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.08;
      osc.connect(gain).connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.25);
    } catch (e) { /* no audio here */ }
  }

  // Live alerts: every open page of a reviewer or admin.
  if (role === 'admin' || role === 'reviewer') {
    const status = $('#live-status');
    let source;
    const connect = () => {
      source = new EventSource('/live');
      source.onopen = () => status && status.classList.add('on');
      source.onerror = () => status && status.classList.remove('on');
      source.addEventListener('capture', (ev) => {
        const c = JSON.parse(ev.data);
        const table = $('table#captures[data-live="1"] tbody');
        if (table) {
          table.insertAdjacentHTML('afterbegin', c.row);
          $('#empty')?.remove();
          const n = $('#count-new');
          if (n) n.textContent = String(Number(n.textContent || '0') + 1);
        }
        // A pupil's own report is told like a tamper event: always, with a
        // sound, whatever the sound setting for captures.
        const text = c.concern
          ? 'A pupil reported a concern (' + c.user + ')'
          : 'New capture: "' + c.term + '" (' + c.category + ', severity ' + c.severity + ')';
        toast(text, '/captures/' + c.id);
        if (window.Notification && Notification.permission === 'granted') {
          new Notification('Safeguard', { body: text, tag: c.id });
        }
        const threshold = Number(localStorage.getItem('sg-sound-min') || '0');
        if (c.concern || (threshold && c.severity >= threshold)) beep();
      });
      // Monitoring interfered with on a laptop: always told, with a sound,
      // because that laptop's silence no longer means nothing happened.
      source.addEventListener('tamper', (ev) => {
        const t = JSON.parse(ev.data);
        const text = 'Tamper: ' + t.what + ' on ' + t.device + (t.user ? ' (' + t.user + ')' : '');
        toast(text, '/tamper#t-' + t.id);
        if (window.Notification && Notification.permission === 'granted') {
          new Notification('Safeguard', { body: text, tag: t.id });
        }
        beep();
      });
      source.addEventListener('expired', () => {
        source.close();
        location.href = '/login?why=expired';
      });
      source.addEventListener('resync', () => {
        if ($('table#captures[data-live="1"]')) location.reload();
      });
    };
    connect();
  } else {
    $('#live-status')?.classList.add('off');
  }

  // Alert settings on the inbox.
  const notifyBtn = $('#enable-notifications');
  if (notifyBtn && window.Notification) {
    notifyBtn.addEventListener('click', () => Notification.requestPermission().then((p) => {
      notifyBtn.textContent = p === 'granted' ? 'Desktop alerts on' : 'Desktop alerts blocked by the browser';
    }));
    if (Notification.permission === 'granted') notifyBtn.textContent = 'Desktop alerts on';
  }
  const sound = $('#sound-min');
  if (sound) {
    sound.value = localStorage.getItem('sg-sound-min') || '0';
    sound.addEventListener('change', () => {
      localStorage.setItem('sg-sound-min', sound.value);
      if (sound.value !== '0') beep();
    });
  }

  // Rows open their capture when clicked (but not on the checkbox).
  document.addEventListener('click', (ev) => {
    const row = ev.target.closest && ev.target.closest('tr.capture');
    if (row && !ev.target.closest('input, a, button, label')) location.href = row.dataset.href;
  });
  const all = $('#select-all');
  if (all) all.addEventListener('change', () => $$('tr.capture input[type=checkbox]').forEach((b) => { b.checked = all.checked; }));

  // Confirmation for grave actions.
  $$('form[data-confirm]').forEach((f) => f.addEventListener('submit', (ev) => {
    if (!confirm(f.dataset.confirm)) ev.preventDefault();
  }));

  // Screenshot zoom.
  $$('.shotbox').forEach((box) => box.addEventListener('click', () => box.classList.toggle('zoomed')));

  // Keyboard triage: j/k move, Enter or o open, x select (inbox);
  // v violation, f false positive, j/k next/previous (capture page).
  document.addEventListener('keydown', (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.target.closest && ev.target.closest('input, textarea, select, [contenteditable]')) return;
    const rows = $$('tr.capture');
    const cur = rows.findIndex((r) => r.classList.contains('cursor'));
    const move = (i) => {
      if (!rows.length) return;
      const n = Math.max(0, Math.min(rows.length - 1, i));
      rows.forEach((r) => r.classList.remove('cursor'));
      rows[n].classList.add('cursor');
      rows[n].scrollIntoView({ block: 'nearest' });
    };
    const key = ev.key;
    if (rows.length) {
      if (key === 'j') { move(cur + 1); ev.preventDefault(); }
      else if (key === 'k') { move(cur < 0 ? 0 : cur - 1); ev.preventDefault(); }
      else if ((key === 'Enter' || key === 'o') && cur >= 0) { location.href = rows[cur].dataset.href; }
      else if (key === 'x' && cur >= 0) { const b = $('input[type=checkbox]', rows[cur]); if (b) b.checked = !b.checked; }
      return;
    }
    if (key === 'v') { const n = $('#violation-note'); if (n) { n.focus(); ev.preventDefault(); } }
    else if (key === 'f') { const f = $('#fp-form'); if (f) { ev.preventDefault(); f.requestSubmit(); } }
    else if (key === 'j') { const a = $('a[rel=next]'); if (a) location.href = a.href; }
    else if (key === 'k') { const a = $('a[rel=prev]'); if (a) location.href = a.href; }
  });
  // Sortable tables: click a heading to sort by it (again to reverse).
  $$('table.sortable').forEach((table) => {
    $$('thead th', table).forEach((th, col) => {
      th.tabIndex = 0;
      const sort = () => {
        const numeric = th.dataset.sort === 'num';
        const dir = th.getAttribute('aria-sort') === 'descending' ? 1 : -1;
        $$('thead th', table).forEach((h) => h.removeAttribute('aria-sort'));
        th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
        const body = $('tbody', table);
        const rows = $$('tr', body);
        const key = (tr) => {
          const td = tr.children[col];
          if (!td) return numeric ? 0 : '';
          return numeric ? Number(td.dataset.v || '0') : td.textContent.trim().toLowerCase();
        };
        rows.sort((a, b) => {
          const x = key(a), y = key(b);
          return (x < y ? -1 : x > y ? 1 : 0) * dir;
        });
        rows.forEach((r) => body.appendChild(r));
      };
      th.addEventListener('click', sort);
      th.addEventListener('keydown', (e) => { if (e.key === 'Enter') sort(); });
    });
  });

  // Filter boxes: hide the rows of their table that do not contain the text.
  $$('input.table-filter').forEach((input) => {
    input.addEventListener('input', () => {
      const q = input.value.trim().toLowerCase();
      const table = document.getElementById(input.dataset.table);
      if (!table) return;
      $$('tbody tr', table).forEach((tr) => {
        tr.hidden = q !== '' && !tr.textContent.toLowerCase().includes(q);
      });
    });
  });

  $$('[data-print]').forEach((b) => b.addEventListener('click', () => window.print()));

  // The register's import: a chosen CSV file is read into the text box.
  const csvFile = $('#csv-file');
  if (csvFile) {
    csvFile.addEventListener('change', () => {
      const f = csvFile.files && csvFile.files[0];
      if (!f) return;
      const r = new FileReader();
      r.onload = () => { $('#csv-text').value = String(r.result); };
      r.readAsText(f);
    });
  }
})();
