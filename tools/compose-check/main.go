// compose-check loads a Compose file the way `docker compose config` does, with no Docker
// engine: the Compose Specification's JSON schema, variable interpolation (a `${VAR:?message}`
// whose variable is unset is an error), normalization and the consistency checks (a
// depends_on, volume or network that names nothing, a cycle). It is a thin wrapper around the
// compose-go library that docker compose itself is built on.
//
//	compose-check [-f FILE]... [-profile NAME]... [-env-file FILE]... [-q | -services | -format json]
//
// Unlike docker compose it reads no `.env` unless given -env-file, so that a check sees only
// the environment it was run with. -profile "*" enables every profile. Exit codes: 0 the file
// is valid, 1 it is not (the reason on stderr), 2 usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func main() {
	var files, profiles, envFiles repeated
	flag.Var(&files, "f", "Compose file (repeatable; default: compose.yaml, docker-compose.yml, ... in the working directory)")
	flag.Var(&profiles, "profile", `profile to enable (repeatable; "*" enables every profile)`)
	flag.Var(&envFiles, "env-file", "file of variables for interpolation (repeatable; default: none)")
	quiet := flag.Bool("q", false, "print nothing; only validate")
	services := flag.Bool("services", false, "print the enabled services' names, one a line")
	format := flag.String("format", "yaml", "output format of the resolved model: yaml or json")
	flag.Parse()
	if flag.NArg() > 0 || (*format != "yaml" && *format != "json") {
		flag.Usage()
		os.Exit(2)
	}

	project, err := load(files, profiles, envFiles)
	if err != nil {
		fmt.Fprintf(os.Stderr, "compose-check: %v\n", err)
		os.Exit(1)
	}
	switch {
	case *quiet:
	case *services:
		for _, name := range project.ServiceNames() {
			fmt.Println(name)
		}
	default:
		out, err := marshal(project, *format)
		if err != nil {
			fmt.Fprintf(os.Stderr, "compose-check: %v\n", err)
			os.Exit(1)
		}
		fmt.Print(string(out))
	}
}

func load(files, profiles, envFiles []string) (*types.Project, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	opts := []cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(wd),
		cli.WithOsEnv,
		cli.WithDefaultConfigPath,
		cli.WithProfiles(profiles),
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
	}
	if len(envFiles) > 0 {
		// Without files, WithEnvFiles would fall back to ./.env: this check reads only what it is given.
		opts = append(opts, cli.WithEnvFiles(envFiles...), cli.WithDotEnv)
	}
	options, err := cli.NewProjectOptions(files, opts...)
	if err != nil {
		return nil, err
	}
	return options.LoadProject(context.Background())
}

func marshal(project *types.Project, format string) ([]byte, error) {
	if format == "json" {
		return project.MarshalJSON()
	}
	return project.MarshalYAML()
}
