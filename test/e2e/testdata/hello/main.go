// Command hello is the program of the images the Docker tests build: what
// it prints depends on the image's config (Env, Cmd) and on a file of a
// layer, so `docker run` output proves the daemon unpacked the layers and
// applied the config it pulled.
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	words := []string{os.Getenv("GREETING")}
	if name := os.Getenv("GREETING_FILE"); name != "" {
		b, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "hello:", err)
			os.Exit(1)
		}
		words = append(words, strings.TrimSpace(string(b)))
	}
	fmt.Println(strings.Join(append(words, os.Args[1:]...), " "))
}
