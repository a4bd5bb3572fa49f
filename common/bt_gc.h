/*
 * bt_gc — the labels garbage collection follows, modelled on containerd's
 * containerd.io/gc.* under berth's own prefix:
 *
 *   on content   berth.io/gc.ref.content.<anything>  = a digest it references
 *                (index → manifests "m.<n>", manifest → "config" and
 *                layers "l.<n>")
 *                berth.io/gc.ref.snapshot.<snapshotter> = a snapshot key it
 *                references (an image config → its top chain ID)
 *   on content or a snapshot   berth.io/gc.root (any value) = never collected
 *
 * The image service sets the references; anyone may set gc.root.
 */
#ifndef BT_GC_H
#define BT_GC_H

#define BT_GC_REF_CONTENT "berth.io/gc.ref.content."
#define BT_GC_REF_SNAPSHOT "berth.io/gc.ref.snapshot."
#define BT_GC_ROOT "berth.io/gc.root"

/* The end of a system.NamespaceUsage line saying work that makes objects
 * is running in the namespace ("2 transfers in progress"): a collection
 * there waits for it. */
#define BT_GC_BUSY "in progress"

#endif
