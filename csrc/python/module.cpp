// The one bindings file: convert, validate, release the GIL, call the core. No logic lives here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "xmhash/isa.hpp"
#include "xmhash/pairwise.hpp"
#include "xmhash/parallel.hpp"
#include "xmhash/search.hpp"
#include "xmhash/select_by_units.hpp"

#if defined(XMHASH_WITH_CUDA)
#include "hamming.cuh"
#endif

namespace py = pybind11;
using namespace xmhash;

namespace {

using CodesIn = py::array_t<std::uint8_t, py::array::c_style>;

// Validated view of a 2-D C-contiguous uint8 array (the Python layer has already normalised inputs).
struct Codes {
  const code_t* data;
  std::size_t n, width;
};

Codes codes_view(const CodesIn& a, const char* name) {
  if (a.ndim() != 2)
    throw std::invalid_argument(std::string(name) + " must be a 2-D uint8 array of packed codes, got " +
                                std::to_string(a.ndim()) + " dimensions");
  return {a.data(), static_cast<std::size_t>(a.shape(0)), static_cast<std::size_t>(a.shape(1))};
}

std::size_t common_width(const Codes& q, const Codes& db) {
  if (q.width != db.width)
    throw std::invalid_argument("queries and database must have the same code width, got " + std::to_string(q.width) +
                                " and " + std::to_string(db.width) + " bytes");
  check_code_size(q.width);
  return q.width;
}

template <class T>
py::array_t<T> to_numpy(std::vector<T>&& v) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>({static_cast<py::ssize_t>(heap->size())}, {sizeof(T)}, heap->data(), owner);
}

py::tuple range_to_python(RangeResultData&& r) {
  return py::make_tuple(to_numpy(std::move(r.lims)), to_numpy(std::move(r.distances)), to_numpy(std::move(r.indices)));
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "xmhash native core (private: use the xmhash package)";
  init_isa_from_env();

  // ------------------------------------------------------------------ engine: build facts and ISA
  m.attr("__version__") = XMHASH_VERSION;
#if defined(XMHASH_WITH_CUDA)
  m.attr("cuda_built") = true;
  m.attr("cuda_architectures") = XMHASH_CUDA_ARCHS;
#else
  m.attr("cuda_built") = false;
  m.attr("cuda_architectures") = "";
#endif
  m.def("get_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("set_isa", [](const std::string& name) { set_isa(parse_isa(name)); }, py::arg("isa"));
  m.def("available_isas", [] {
    std::vector<std::string> out;
    for (Isa isa : available_isas()) out.emplace_back(isa_name(isa));
    return out;
  });
  m.def("default_threads", [] { return resolve_threads(0); });

  // ------------------------------------------------------------------ engine: brute-force search
  m.def(
      "cdist",
      [](const CodesIn& q, const CodesIn& db, int threads) {
        Codes qv = codes_view(q, "queries"), dv = codes_view(db, "database");
        std::size_t cs = common_width(qv, dv);
        py::array_t<dist_t> out({static_cast<py::ssize_t>(qv.n), static_cast<py::ssize_t>(dv.n)});
        dist_t* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          cdist(qv.data, qv.n, dv.data, dv.n, cs, o, threads);
        }
        return out;
      },
      py::arg("queries"), py::arg("database"), py::arg("threads") = 0);

  m.def(
      "knn",
      [](const CodesIn& q, const CodesIn& db, std::size_t k, int threads) {
        Codes qv = codes_view(q, "queries"), dv = codes_view(db, "database");
        std::size_t cs = common_width(qv, dv);
        py::array_t<dist_t> D({static_cast<py::ssize_t>(qv.n), static_cast<py::ssize_t>(k)});
        py::array_t<idx_t> I({static_cast<py::ssize_t>(qv.n), static_cast<py::ssize_t>(k)});
        dist_t* d = D.mutable_data();
        idx_t* ix = I.mutable_data();
        {
          py::gil_scoped_release release;
          knn(qv.data, qv.n, dv.data, dv.n, cs, k, d, ix, threads);
        }
        return py::make_tuple(D, I);
      },
      py::arg("queries"), py::arg("database"), py::arg("k"), py::arg("threads") = 0);

  m.def(
      "range_search",
      [](const CodesIn& q, const CodesIn& db, int radius, int threads, std::size_t k) {
        Codes qv = codes_view(q, "queries"), dv = codes_view(db, "database");
        std::size_t cs = common_width(qv, dv);
        RangeResultData r;
        {
          py::gil_scoped_release release;
          r = range_search(qv.data, qv.n, dv.data, dv.n, cs, radius, threads, k);
        }
        return range_to_python(std::move(r));
      },
      py::arg("queries"), py::arg("database"), py::arg("radius"), py::arg("threads") = 0, py::arg("k") = 0);

  // ------------------------------------------------------------------ metrics

  // ------------------------------------------------------------------ pairwise loss
  // pairwise_loss(a, b, labels_a, labels_b, ...) -> float; fills grad_a / grad_b when given (None skips them).
  // One overload per dtype, without conversion: the Python layer hands over C-contiguous arrays of one dtype.
  {
    auto bind_pairwise = [&m](auto tag) {
      using T = decltype(tag);
      using ArrayT = py::array_t<T, py::array::c_style>;
      using LabelsT = py::array_t<std::uint8_t, py::array::c_style>;
      m.def(
          "pairwise_loss",
          [](const ArrayT& a, const ArrayT& b, const LabelsT& la, const LabelsT& lb, double scale,
             double similarity_scale, double similar_weight, double dissimilar_weight, const std::string& variant,
             bool mean, const py::object& grad_a, const py::object& grad_b, int threads) {
            auto need = [](bool ok, const std::string& msg) {
              if (!ok) throw std::invalid_argument(msg);
            };
            need(a.ndim() == 2 && b.ndim() == 2, "a and b must be 2-D arrays");
            need(la.ndim() == 2 && lb.ndim() == 2, "labels_a and labels_b must be 2-D uint8 arrays of label bits");
            const std::size_t n = a.shape(0), N = b.shape(0), d = a.shape(1);
            need(static_cast<std::size_t>(b.shape(1)) == d,
                 "a and b must have the same number of columns, got " + std::to_string(d) + " and " +
                     std::to_string(b.shape(1)));
            need(static_cast<std::size_t>(la.shape(0)) == n && static_cast<std::size_t>(lb.shape(0)) == N,
                 "labels_a / labels_b must have one row per row of a / b");
            need(la.shape(1) == lb.shape(1), "labels_a and labels_b must have the same number of label bytes");
            need(variant == "nll" || variant == "squared", "variant must be 'nll' or 'squared', got '" + variant + "'");
            auto out = [&](const py::object& g, std::size_t rows, const char* name) -> T* {
              if (g.is_none()) return nullptr;
              need(py::isinstance<ArrayT>(g), std::string(name) + " must be a C-contiguous array of the input dtype");
              auto arr = py::reinterpret_borrow<ArrayT>(g);
              need(arr.writeable() && arr.ndim() == 2 && static_cast<std::size_t>(arr.shape(0)) == rows &&
                       static_cast<std::size_t>(arr.shape(1)) == d,
                   std::string(name) + " must be a writeable array of the shape of its input");
              return arr.mutable_data();
            };
            T* ga = out(grad_a, n, "grad_a");
            T* gb = out(grad_b, N, "grad_b");
            PairwiseOptions opt;
            opt.scale = scale;
            opt.similarity_scale = similarity_scale;
            opt.similar_weight = similar_weight;
            opt.dissimilar_weight = dissimilar_weight;
            opt.variant = variant == "squared" ? PairwiseVariant::Squared : PairwiseVariant::Nll;
            opt.mean = mean;
            opt.threads = threads;
            const T *pa = a.data(), *pb = b.data();
            const std::uint8_t *pla = la.data(), *plb = lb.data();
            const std::size_t lbytes = la.shape(1);
            py::gil_scoped_release release;
            return pairwise_loss<T>(pa, n, pb, N, d, pla, plb, lbytes, opt, ga, gb);
          },
          py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("labels_a").noconvert(),
          py::arg("labels_b").noconvert(), py::arg("scale"), py::arg("similarity_scale"), py::arg("similar_weight"),
          py::arg("dissimilar_weight"), py::arg("variant"), py::arg("mean"), py::arg("grad_a"), py::arg("grad_b"),
          py::arg("threads"));
    };
    bind_pairwise(float{});
    bind_pairwise(double{});
  }

  // ------------------------------------------------------------------ multi-index hashing

  // ------------------------------------------------------------------ cuda
  // CPU model of the GPU selection (same shared logic, run sequentially): lets the CPU tests check it.
  m.def(
      "_select_by_units",
      [](const CodesIn& q, const CodesIn& db, int limit, std::size_t k, std::size_t units_per_query,
         std::size_t min_chunk) {
        Codes qv = codes_view(q, "queries"), dv = codes_view(db, "database");
        std::size_t cs = common_width(qv, dv);
        RangeResultData r;
        {
          py::gil_scoped_release release;
          r = select_by_units(qv.data, qv.n, dv.data, dv.n, cs, limit, k, units_per_query, min_chunk);
        }
        return range_to_python(std::move(r));
      },
      py::arg("queries"), py::arg("database"), py::arg("limit"), py::arg("k"), py::arg("units_per_query"),
      py::arg("min_chunk") = 0);
#if defined(XMHASH_WITH_CUDA)
  // Device buffers arrive as integer addresses (torch's data_ptr()) with their shapes, the CUDA device index
  // and a cudaStream_t address; python/xmhash/_cuda.py validates them. Launches are asynchronous.
  using uptr = std::uintptr_t;
  auto check = [](int err, const char* what) {
    if (err != 0)
      throw std::runtime_error(std::string(what) + " failed: " + xmhash_cuda_error_name(err) + " (" +
                               xmhash_cuda_error_string(err) + ")");
  };
  auto u8 = [](uptr p) { return reinterpret_cast<const std::uint8_t*>(p); };
  auto stream_of = [](uptr s) { return reinterpret_cast<void*>(s); };

  m.def("cuda_device_count", [] { return xmhash_cuda_device_count(); });
  m.def("cuda_error_string", [](int code) { return std::string(xmhash_cuda_error_string(code)); });
  m.def("cuda_error_name", [](int code) { return std::string(xmhash_cuda_error_name(code)); });
  m.def("cuda_runtime_version", [] { return xmhash_cuda_runtime_version(); });
  m.def("cuda_driver_version", [] { return xmhash_cuda_driver_version(); });
  m.def(
      "cuda_device_info",
      [check](int device) {
        char name[256];
        int major = 0, minor = 0, sms = 0;
        check(xmhash_cuda_device_info(device, name, sizeof name, &major, &minor, &sms), "cudaGetDeviceProperties");
        py::dict d;
        d["name"] = std::string(name);
        d["capability"] = py::make_tuple(major, minor);
        d["multiprocessors"] = sms;
        return d;
      },
      py::arg("device"));

  m.def(
      "cuda_cdist",
      [=](uptr q, std::size_t nq, uptr db, std::size_t nb, std::size_t cs, uptr out, int device, uptr stream) {
        py::gil_scoped_release release;
        check(xmhash_cuda_cdist(u8(q), nq, u8(db), nb, cs, reinterpret_cast<std::int32_t*>(out), device,
                                stream_of(stream)),
              "xmhash_cuda_cdist");
      },
      py::arg("queries"), py::arg("nq"), py::arg("database"), py::arg("nb"), py::arg("code_size"), py::arg("out"),
      py::arg("device"), py::arg("stream"));

  m.def(
      "cuda_select_workspace",
      [=](std::size_t nq, std::size_t nb, std::size_t cs, int limit, std::size_t k, int device) {
        std::size_t bytes = 0;
        check(xmhash_cuda_select_workspace(nq, nb, cs, limit, k, device, &bytes), "xmhash_cuda_select_workspace");
        return bytes;
      },
      py::arg("nq"), py::arg("nb"), py::arg("code_size"), py::arg("limit"), py::arg("k"), py::arg("device"));

  m.def(
      "cuda_knn",
      [=](uptr q, std::size_t nq, uptr db, std::size_t nb, std::size_t cs, std::size_t k, uptr D, uptr I, uptr ws,
          std::size_t ws_bytes, int device, uptr stream) {
        py::gil_scoped_release release;
        check(xmhash_cuda_knn(u8(q), nq, u8(db), nb, cs, k, reinterpret_cast<std::int32_t*>(D),
                              reinterpret_cast<std::int64_t*>(I), reinterpret_cast<void*>(ws), ws_bytes, device,
                              stream_of(stream)),
              "xmhash_cuda_knn");
      },
      py::arg("queries"), py::arg("nq"), py::arg("database"), py::arg("nb"), py::arg("code_size"), py::arg("k"),
      py::arg("distances"), py::arg("indices"), py::arg("workspace"), py::arg("workspace_bytes"), py::arg("device"),
      py::arg("stream"));

  m.def(
      "cuda_range_count",
      [=](uptr q, std::size_t nq, uptr db, std::size_t nb, std::size_t cs, int limit, std::size_t k, uptr lims,
          uptr ws, std::size_t ws_bytes, int device, uptr stream) {
        py::gil_scoped_release release;
        check(xmhash_cuda_range_count(u8(q), nq, u8(db), nb, cs, limit, k, reinterpret_cast<std::int64_t*>(lims),
                                      reinterpret_cast<void*>(ws), ws_bytes, device, stream_of(stream)),
              "xmhash_cuda_range_count");
      },
      py::arg("queries"), py::arg("nq"), py::arg("database"), py::arg("nb"), py::arg("code_size"), py::arg("limit"),
      py::arg("k"), py::arg("lims"), py::arg("workspace"), py::arg("workspace_bytes"), py::arg("device"),
      py::arg("stream"));

  m.def(
      "cuda_range_fill",
      [=](uptr q, std::size_t nq, uptr db, std::size_t nb, std::size_t cs, int limit, std::size_t k, uptr lims,
          uptr D, uptr I, uptr ws, std::size_t ws_bytes, int device, uptr stream) {
        py::gil_scoped_release release;
        check(xmhash_cuda_range_fill(u8(q), nq, u8(db), nb, cs, limit, k, reinterpret_cast<const std::int64_t*>(lims),
                                     reinterpret_cast<std::int32_t*>(D), reinterpret_cast<std::int64_t*>(I),
                                     reinterpret_cast<void*>(ws), ws_bytes, device, stream_of(stream)),
              "xmhash_cuda_range_fill");
      },
      py::arg("queries"), py::arg("nq"), py::arg("database"), py::arg("nb"), py::arg("code_size"), py::arg("limit"),
      py::arg("k"), py::arg("lims"), py::arg("distances"), py::arg("indices"), py::arg("workspace"),
      py::arg("workspace_bytes"), py::arg("device"), py::arg("stream"));

  m.def(
      "cuda_metric_histograms",
      [=](uptr q, std::size_t nq, uptr db, std::size_t nb, std::size_t cs, uptr q_labels, uptr db_labels,
          std::size_t label_bytes, uptr q_class, uptr db_class, uptr n_at, uptr r_at, int device, uptr stream) {
        py::gil_scoped_release release;
        check(xmhash_cuda_metric_histograms(u8(q), nq, u8(db), nb, cs, u8(q_labels), u8(db_labels), label_bytes,
                                            reinterpret_cast<const std::int64_t*>(q_class),
                                            reinterpret_cast<const std::int64_t*>(db_class),
                                            reinterpret_cast<std::int32_t*>(n_at),
                                            reinterpret_cast<std::int32_t*>(r_at), device, stream_of(stream)),
              "xmhash_cuda_metric_histograms");
      },
      py::arg("queries"), py::arg("nq"), py::arg("database"), py::arg("nb"), py::arg("code_size"),
      py::arg("q_labels"), py::arg("db_labels"), py::arg("label_bytes"), py::arg("q_class"), py::arg("db_class"),
      py::arg("n_at"), py::arg("r_at"), py::arg("device"), py::arg("stream"));
#endif
}
