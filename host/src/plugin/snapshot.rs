//! Pre-initialised components (wasmtime-wizer): run a component's `wizer-initialize` export
//! once, then write its memory and globals back into the component, so every later instance
//! starts where initialisation ended. Code mode's engine builds its JavaScript runtime this
//! way: a run then costs an instantiation, not an engine start-up.
//!
//! Why by hand rather than `Wizer::run_component`: that convenience needs wizer's `wasmtime`
//! feature, which turns on wasmtime features the host does not build (threads, GC, the on-disk
//! cache...). Instrumenting and snapshotting need none of them; only the instance's state is
//! read through this host's own engine and linker, as `WasmtimeWizerComponent` does.
//!
//! What a snapshot freezes is whatever initialisation touched: the engine must not draw
//! randomness or read the clock there, or every run would repeat the same values.

use wasmtime::component::{Component, Instance, Lift, WasmList};
use wasmtime::Store;
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use super::{PluginError, PluginHost, PluginPolicy, PluginState, RunOptions};

/// The export a pre-initialised component provides.
pub const INIT_FUNC: &str = "wizer-initialize";

impl PluginHost {
    /// `bytes` with its `wizer-initialize` export already run: the snapshot to load instead.
    pub async fn pre_initialize(&self, name: &str, bytes: &[u8]) -> Result<Vec<u8>, PluginError> {
        let failed = |e: wasmtime::Error| PluginError::Invalid {
            name: name.to_owned(),
            message: format!("pre-initialising: {e:#}"),
        };
        let mut wizer = Wizer::new();
        wizer.init_func(INIT_FUNC).keep_init_func(true);
        let (cx, instrumented) = wizer.instrument_component(bytes).map_err(failed)?;
        let component = Component::new(&self.engine, &instrumented).map_err(failed)?;
        let policy = std::sync::Arc::new(PluginPolicy::default());
        let (mut store, _, _) = self.store(&name.into(), &policy, RunOptions::default())?;
        let instance = self
            .linker
            .instantiate_async(&mut store, &component)
            .await
            .map_err(failed)?;
        let init = instance
            .get_typed_func::<(), ()>(&mut store, INIT_FUNC)
            .map_err(failed)?;
        init.call_async(&mut store, ()).await.map_err(failed)?;
        let mut state = InstanceState {
            store: &mut store,
            instance,
        };
        wizer
            .snapshot_component(&cx, &mut state)
            .await
            .map_err(failed)
    }
}

/// The instance's state as wizer reads it: through the accessor functions its
/// instrumentation exported.
struct InstanceState<'a> {
    store: &'a mut Store<PluginState>,
    instance: Instance,
}

impl InstanceState<'_> {
    async fn call<R: Lift + 'static, T>(
        &mut self,
        instance: &str,
        func: &str,
        read: impl FnOnce(&mut Store<PluginState>, R) -> T,
    ) -> T {
        // The accessors exist and have these types by construction (wizer instrumented
        // the component a moment ago); a failure here is a wizer bug, and wizer's own
        // implementation of this trait panics the same way.
        let (_, exported) = self
            .instance
            .get_export(&mut *self.store, None, instance)
            .expect("wizer's accessor instance");
        let (_, func) = self
            .instance
            .get_export(&mut *self.store, Some(&exported), func)
            .expect("wizer's accessor function");
        let func = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, func)
            .expect("wizer's accessor type");
        let (value,) = func
            .call_async(&mut *self.store, ())
            .await
            .expect("wizer's accessor call");
        read(&mut *self.store, value)
    }
}

impl ComponentInstanceState for InstanceState<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        self.call(instance, func, |store, list: WasmList<u8>| {
            contents(list.as_le_slice(&*store))
        })
        .await
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func, |_, v| v).await
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func, |_, v| v).await
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call(instance, func, |_, v: f32| v.to_bits()).await
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call(instance, func, |_, v: f64| v.to_bits()).await
    }
}
