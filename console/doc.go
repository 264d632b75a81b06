// Package console is pullcache's web console, served at /ui/ on the main
// listener: what the cache holds and saves, upload of saved images,
// warming, export. Pages are server-rendered html/template with a little
// plain JavaScript; every asset is embedded, so the console works with no
// internet access.
//
// It holds no data of its own: every figure comes from the admin package,
// the same code that answers the admin API's JSON, and the pages' scripts
// read that JSON through /ui/api/, which is the admin API behind the
// console's login.
package console
