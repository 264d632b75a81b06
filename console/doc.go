// Package console is pullcache's web console, served at /ui/ on the main
// listener: what the cache holds and saves, upload of saved images,
// warming, export, and the cache's maintenance (pins, delete, garbage
// collection, verify, disk use). Pages are server-rendered html/template
// with a little plain JavaScript; every asset is embedded, so the console
// works with no internet access.
//
// Every signed-in user sees what the access rules let them pull (the
// Logins, when they also implement Rules, say what that is); only
// admins change the cache. The console holds no data of its own: every
// figure comes from the admin package, the same code that answers the
// admin API's JSON, and the pages' scripts read that JSON through
// /ui/api/, which is the admin API behind the console's login.
//
// It is not a login database nor a policy: its Logins check sign-ins
// and decide access, the console asks them. session.go holds what is the
// console's own: sessions, their cookies and CSRF tokens, sign-in and out.
package console
