package config

import (
	"reflect"
	"unsafe"

	"github.com/foxcpp/maddy/framework/module"
)

// This file looks inside maddy's msgpipeline to count the delivery targets
// one fetched message can reach. msgpipeline commits its targets one after
// another and returns at the first failure: with two targets, a failed
// Commit can mean "stored in one", and the retry that follows would store
// it there again. remote_pull refuses such a pipeline at start rather than
// duplicate mail.
//
// maddy does not export the pipeline's routing, so this reads its
// unexported fields (internal/msgpipeline: msgpipelineCfg, sourceBlock,
// rcptBlock in 0.8.2). If they are not where expected (another maddy
// version), the count is unknown and the caller warns instead.

// pipelineStorage returns the maddy storage target's pipeline delivers
// into, when every route leads to the same one (local_folders mirror needs
// it to find and create folders).
func pipelineStorage(target module.DeliveryTarget) (module.Storage, bool) {
	leaves := map[any]bool{}
	if _, ok := countTargets(reflect.ValueOf(target), leaves, 0); !ok || len(leaves) != 1 {
		return nil, false
	}
	for leaf := range leaves {
		s, ok := leaf.(module.Storage)
		return s, ok
	}
	return nil, false
}

// PipelineTargets returns every delivery target (storage, remote queue...)
// a message of target can end in, for what each needs to make a commit
// durable; ok is false when the pipeline's structure could not be read.
func PipelineTargets(target module.DeliveryTarget) (leaves []module.DeliveryTarget, ok bool) {
	set := map[any]bool{}
	if _, ok := countTargets(reflect.ValueOf(target), set, 0); !ok {
		return nil, false
	}
	for leaf := range set {
		if t, isTarget := leaf.(module.DeliveryTarget); isTarget {
			leaves = append(leaves, t)
		}
	}
	return leaves, true
}

// pipelineTargets reports, for target, the most delivery targets one
// message to a single recipient can be committed to (perRcpt), and how many
// distinct targets any recipient can reach (all). ok is false when the
// pipeline's structure could not be read.
func pipelineTargets(target module.DeliveryTarget) (perRcpt int, all int, ok bool) {
	leaves := map[any]bool{}
	perRcpt, ok = countTargets(reflect.ValueOf(target), leaves, 0)
	return perRcpt, len(leaves), ok
}

// countTargets returns the most leaf targets a single recipient reaches
// through t, adding every leaf t can reach to leaves.
func countTargets(t reflect.Value, leaves map[any]bool, depth int) (int, bool) {
	cfg, isPipeline := pipelineCfg(t)
	if !isPipeline {
		leaves[t.Interface()] = true
		return 1, true
	}
	if depth > 16 || !cfg.IsValid() {
		return 0, false // a routing loop, or a structure we do not know
	}
	perSource, defaultSource := cfg.FieldByName("perSource"), cfg.FieldByName("defaultSource")
	if perSource.Kind() != reflect.Map || defaultSource.Kind() != reflect.Struct {
		return 0, false
	}
	sources := []reflect.Value{defaultSource}
	for it := perSource.MapRange(); it.Next(); {
		sources = append(sources, it.Value())
	}
	most := 0
	for _, src := range sources {
		perRcpt, defaultRcpt := src.FieldByName("perRcpt"), src.FieldByName("defaultRcpt")
		if perRcpt.Kind() != reflect.Map || defaultRcpt.Kind() != reflect.Pointer {
			return 0, false
		}
		blocks := []reflect.Value{defaultRcpt}
		for it := perRcpt.MapRange(); it.Next(); {
			blocks = append(blocks, it.Value())
		}
		for _, b := range blocks {
			if b.IsNil() {
				continue
			}
			targets := b.Elem().FieldByName("targets")
			if targets.Kind() != reflect.Slice {
				return 0, false
			}
			n := 0
			for i := 0; i < targets.Len(); i++ {
				// Index of a slice is addressable: read the interface
				// value through its address, since the field is unexported.
				el := targets.Index(i)
				tv := reflect.NewAt(el.Type(), unsafe.Pointer(el.UnsafeAddr())).Elem()
				if tv.IsNil() {
					continue
				}
				c, ok := countTargets(tv.Elem(), leaves, depth+1)
				if !ok {
					return 0, false
				}
				n += c
			}
			most = max(most, n)
		}
	}
	return most, true
}

// pipelineCfg returns the embedded msgpipelineCfg of a msgpipeline module
// (or of a bare *MsgPipeline), and whether t is one.
func pipelineCfg(t reflect.Value) (reflect.Value, bool) {
	if t.Kind() != reflect.Pointer || t.IsNil() || t.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	s := t.Elem()
	if mp := s.FieldByName("MsgPipeline"); mp.IsValid() && mp.Kind() == reflect.Pointer && !mp.IsNil() {
		s = mp.Elem() // the msgpipeline module embeds *MsgPipeline
	}
	if s.Type().Name() != "MsgPipeline" || s.Type().PkgPath() != "github.com/foxcpp/maddy/internal/msgpipeline" {
		return reflect.Value{}, false
	}
	return s.FieldByName("msgpipelineCfg"), true
}
