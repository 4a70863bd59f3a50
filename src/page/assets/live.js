// reachguard incident page: progressive enhancements. The page works without
// this file; with it, the findings list grows as findings are written (server-
// sent events from /events, filtered on the server by the same query string)
// and the restore command can be copied with one click. Rows arrive rendered
// and escaped by the server; nothing here builds HTML from log strings.
'use strict';

document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('button[data-copy]').forEach(function (button) {
    button.addEventListener('click', function () {
      var source = document.getElementById(button.getAttribute('data-copy'));
      if (!source || !navigator.clipboard) return;
      navigator.clipboard.writeText(source.textContent).then(function () {
        button.textContent = 'Copied';
      });
    });
  });

  var table = document.getElementById('findings');
  if (!table || !window.EventSource) return;
  var body = table.querySelector('tbody');
  var state = document.getElementById('live-state');
  var params = new URLSearchParams(window.location.search);
  params.delete('limit');
  var newest = table.getAttribute('data-newest');
  if (newest) params.set('after', newest);
  var source = new EventSource('/events?' + params.toString());
  source.addEventListener('open', function () {
    state.textContent = '· live';
    table.setAttribute('data-live', 'connected');
  });
  source.addEventListener('error', function () {
    state.textContent = '· reconnecting';
  });
  source.addEventListener('finding', function (e) {
    var update = JSON.parse(e.data);
    if (document.getElementById('f-' + update.id)) return;
    var holder = document.createElement('tbody');
    holder.innerHTML = update.row;
    var row = holder.firstElementChild;
    if (!row) return;
    row.classList.add('new');
    body.insertBefore(row, body.firstElementChild);
    var empty = document.querySelector('p.empty');
    if (empty) empty.remove();
  });
  source.addEventListener('reload', function () {
    window.location.reload();
  });
});
