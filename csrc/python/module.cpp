// The one bindings file: convert, validate, release the GIL, call the core. No logic lives here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <type_traits>
#include <vector>

#include "xmhash/isa.hpp"
#include "xmhash/metrics.hpp"
#include "xmhash/pairwise.hpp"
#include "xmhash/pairwise_tiles_model.hpp"
#include "xmhash/mih.hpp"
#include "xmhash/parallel.hpp"
#include "xmhash/search.hpp"
#include "xmhash/select_by_units.hpp"
#include "xmhash/throughput.hpp"

#if defined(XMHASH_WITH_CUDA)
#include "hamming.cuh"
#include "pairwise.cuh"
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


// Options of both pairwise entry points (CPU and CUDA); the variant is validated here.
PairwiseOptions pairwise_options(double scale, double similarity_scale, double similar_weight,
                                 double dissimilar_weight, const std::string& variant, bool mean) {
  if (variant != "nll" && variant != "squared")
    throw std::invalid_argument("variant must be 'nll' or 'squared', got '" + variant + "'");
  PairwiseOptions opt;
  opt.scale = scale;
  opt.similarity_scale = similarity_scale;
  opt.similar_weight = similar_weight;
  opt.dissimilar_weight = dissimilar_weight;
  opt.variant = variant == "squared" ? PairwiseVariant::Squared : PairwiseVariant::Nll;
  opt.mean = mean;
  return opt;
}

// The arguments shared by pairwise_loss and its GPU model, validated: raw pointers and sizes ready for the core.
template <class T>
struct PairwiseCall {
  using ArrayT = py::array_t<T, py::array::c_style>;
  using LabelsT = py::array_t<std::uint8_t, py::array::c_style>;

  const T *a, *b;
  const std::uint8_t *labels_a, *labels_b;
  std::size_t n, N, d, label_bytes;
  T *grad_a, *grad_b;
  PairwiseOptions opt;

  PairwiseCall(const ArrayT& a_, const ArrayT& b_, const LabelsT& la, const LabelsT& lb, double scale,
               double similarity_scale, double similar_weight, double dissimilar_weight, const std::string& variant,
               bool mean, const py::object& ga, const py::object& gb) {
    need(a_.ndim() == 2 && b_.ndim() == 2, "a and b must be 2-D arrays");
    need(la.ndim() == 2 && lb.ndim() == 2, "labels_a and labels_b must be 2-D uint8 arrays of label bits");
    n = a_.shape(0), N = b_.shape(0), d = a_.shape(1);
    need(static_cast<std::size_t>(b_.shape(1)) == d, "a and b must have the same number of columns, got " +
                                                         std::to_string(d) + " and " + std::to_string(b_.shape(1)));
    need(static_cast<std::size_t>(la.shape(0)) == n && static_cast<std::size_t>(lb.shape(0)) == N,
         "labels_a / labels_b must have one row per row of a / b");
    need(la.shape(1) == lb.shape(1), "labels_a and labels_b must have the same number of label bytes");
    opt = pairwise_options(scale, similarity_scale, similar_weight, dissimilar_weight, variant, mean);
    a = a_.data(), b = b_.data(), labels_a = la.data(), labels_b = lb.data(), label_bytes = la.shape(1);
    grad_a = output(ga, n, "grad_a");
    grad_b = output(gb, N, "grad_b");
  }

 private:
  static void need(bool ok, const std::string& msg) {
    if (!ok) throw std::invalid_argument(msg);
  }
  T* output(const py::object& g, std::size_t rows, const char* name) const {
    if (g.is_none()) return nullptr;  // None: that gradient is not wanted
    need(py::isinstance<ArrayT>(g), std::string(name) + " must be a C-contiguous array of the input dtype");
    auto arr = py::reinterpret_borrow<ArrayT>(g);
    need(arr.writeable() && arr.ndim() == 2 && static_cast<std::size_t>(arr.shape(0)) == rows &&
             static_cast<std::size_t>(arr.shape(1)) == d,
         std::string(name) + " must be a writeable array of the shape of its input");
    return arr.mutable_data();
  }
};

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

  // Benchmark probe (bench/bench_search.py): comparisons/s of the popcount ceiling or of the active kernels.
  m.def(
      "_throughput",
      [](const std::string& kind, std::size_t code_size, int threads, double seconds) {
        py::gil_scoped_release release;
        return measure_throughput(kind, code_size, threads, seconds);
      },
      py::arg("kind"), py::arg("code_size"), py::arg("threads") = 0, py::arg("seconds") = 0.5);

  // ------------------------------------------------------------------ metrics
  // Labels arrive normalised by xmhash.metrics: packed multi-hot rows (uint8, 2-D) or class ids (int64, 1-D).
  auto retrieval_set = [](const CodesIn& q, const CodesIn& db, const py::array& ql, const py::array& dl) {
    Codes qv = codes_view(q, "q_codes"), dv = codes_view(db, "db_codes");
    RetrievalSet set{qv.data, qv.n, dv.data, dv.n, common_width(qv, dv), Labels{}};
    auto is = [](const py::array& a, py::dtype dt, int ndim) {
      return a.dtype().is(dt) && a.ndim() == ndim && (a.flags() & py::array::c_style);
    };
    if (is(ql, py::dtype::of<std::uint8_t>(), 2) && is(dl, py::dtype::of<std::uint8_t>(), 2) &&
        ql.shape(1) == dl.shape(1)) {
      set.labels.q_bits = static_cast<const code_t*>(ql.data());
      set.labels.db_bits = static_cast<const code_t*>(dl.data());
      set.labels.label_bytes = static_cast<std::size_t>(ql.shape(1));
    } else if (is(ql, py::dtype::of<std::int64_t>(), 1) && is(dl, py::dtype::of<std::int64_t>(), 1)) {
      set.labels.q_class = static_cast<const std::int64_t*>(ql.data());
      set.labels.db_class = static_cast<const std::int64_t*>(dl.data());
    } else {
      throw std::invalid_argument(
          "labels must both be C-contiguous packed multi-hot rows (uint8, 2-D, same width) or class ids "
          "(int64, 1-D)");
    }
    if (static_cast<std::size_t>(ql.shape(0)) != set.nq || static_cast<std::size_t>(dl.shape(0)) != set.nb)
      throw std::invalid_argument("q_labels/db_labels must have one row per code of q_codes/db_codes");
    return set;
  };
  auto parse_ties = [](const std::string& t) {
    if (t == "index") return Ties::Index;
    if (t == "average") return Ties::Average;
    throw std::invalid_argument("ties must be 'index' or 'average', got '" + t + "'");
  };

  m.def(
      "average_precision",
      [=](const CodesIn& q, const CodesIn& db, const py::array& ql, const py::array& dl, std::size_t k,
          const std::string& ties, int threads) {
        RetrievalSet set = retrieval_set(q, db, ql, dl);
        Ties t = parse_ties(ties);
        py::array_t<double> ap(static_cast<py::ssize_t>(set.nq));
        double* out = ap.mutable_data();
        {
          py::gil_scoped_release release;
          average_precision(set, k, t, out, threads);
        }
        return ap;
      },
      py::arg("q_codes"), py::arg("db_codes"), py::arg("q_labels"), py::arg("db_labels"), py::arg("k"),
      py::arg("ties"), py::arg("threads") = 0);

  m.def(
      "precision_recall_at",
      [=](const CodesIn& q, const CodesIn& db, const py::array& ql, const py::array& dl,
          const py::array_t<std::uint64_t, py::array::c_style>& ks, const std::string& ties, int threads) {
        RetrievalSet set = retrieval_set(q, db, ql, dl);
        Ties t = parse_ties(ties);
        if (ks.ndim() != 1) throw std::invalid_argument("ks must be 1-D");
        const std::size_t nk = static_cast<std::size_t>(ks.shape(0));
        std::vector<std::size_t> kv(ks.data(), ks.data() + nk);
        py::array_t<double> prec({static_cast<py::ssize_t>(set.nq), static_cast<py::ssize_t>(nk)});
        py::array_t<double> rec({static_cast<py::ssize_t>(set.nq), static_cast<py::ssize_t>(nk)});
        double* p = prec.mutable_data();
        double* r = rec.mutable_data();
        {
          py::gil_scoped_release release;
          precision_recall_at(set, kv.data(), nk, t, p, r, threads);
        }
        return py::make_tuple(prec, rec);
      },
      py::arg("q_codes"), py::arg("db_codes"), py::arg("q_labels"), py::arg("db_labels"), py::arg("ks"),
      py::arg("ties"), py::arg("threads") = 0);

  m.def(
      "radius_curves",
      [=](const CodesIn& q, const CodesIn& db, const py::array& ql, const py::array& dl, int threads) {
        RetrievalSet set = retrieval_set(q, db, ql, dl);
        RadiusCurves c;
        {
          py::gil_scoped_release release;
          c = radius_curves(set, threads);
        }
        py::dict out;
        out["tp"] = to_numpy(std::move(c.tp));
        out["retrieved"] = to_numpy(std::move(c.retrieved));
        out["relevant"] = c.relevant;
        out["precision_sum"] = to_numpy(std::move(c.precision_sum));
        out["precision_count"] = to_numpy(std::move(c.precision_count));
        out["recall_sum"] = to_numpy(std::move(c.recall_sum));
        return out;
      },
      py::arg("q_codes"), py::arg("db_codes"), py::arg("q_labels"), py::arg("db_labels"), py::arg("threads") = 0);

  m.def(
      "precision_within_radius",
      [=](const CodesIn& q, const CodesIn& db, const py::array& ql, const py::array& dl, int radius, int threads) {
        RetrievalSet set = retrieval_set(q, db, ql, dl);
        py::array_t<double> prec(static_cast<py::ssize_t>(set.nq));
        double* p = prec.mutable_data();
        {
          py::gil_scoped_release release;
          precision_within_radius(set, radius, p, threads);
        }
        return prec;
      },
      py::arg("q_codes"), py::arg("db_codes"), py::arg("q_labels"), py::arg("db_labels"), py::arg("radius"),
      py::arg("threads") = 0);

  // ------------------------------------------------------------------ pairwise loss
  // pairwise_loss(a, b, labels_a, labels_b, ...) -> float; fills grad_a / grad_b when given (None skips them).
  // One overload per dtype, without conversion: the Python layer hands over C-contiguous arrays of one dtype.
  {
    auto bind_pairwise = [&m](auto tag) {
      using T = decltype(tag);
      using ArrayT = typename PairwiseCall<T>::ArrayT;
      using LabelsT = typename PairwiseCall<T>::LabelsT;
      m.def(
          "pairwise_loss",
          [](const ArrayT& a, const ArrayT& b, const LabelsT& la, const LabelsT& lb, double scale,
             double similarity_scale, double similar_weight, double dissimilar_weight, const std::string& variant,
             bool mean, const py::object& grad_a, const py::object& grad_b, int threads) {
            PairwiseCall<T> c(a, b, la, lb, scale, similarity_scale, similar_weight, dissimilar_weight, variant,
                              mean, grad_a, grad_b);
            c.opt.threads = threads;
            py::gil_scoped_release release;
            return pairwise_loss<T>(c.a, c.n, c.b, c.N, c.d, c.labels_a, c.labels_b, c.label_bytes, c.opt, c.grad_a,
                                    c.grad_b);
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
  {
    // The tables index codes the Python HammingIndex owns; every call passes those codes (validated here).
    auto check_width = [](const MultiIndexHashing& self, const Codes& c, const char* name) {
      if (c.width * 8 != static_cast<std::size_t>(self.nbits()))
        throw std::invalid_argument(std::string(name) + " must have " + std::to_string(self.nbits()) +
                                    " bits per code, got " + std::to_string(c.width * 8));
    };
    auto stats_dict = [](const MihStats& s) {
      py::dict d;
      d["method"] = method_name(s.used);
      d["queries"] = s.queries;
      d["probes"] = s.probes;
      d["candidates"] = s.candidates;
      d["mih_queries"] = s.mih_queries;
      d["scan_queries"] = s.scan_queries;
      d["sampled"] = s.sampled;
      d["est_mih_ns"] = s.est_mih_ns;
      d["est_scan_ns"] = s.est_scan_ns;
      return d;
    };
    py::class_<MultiIndexHashing>(m, "MultiIndexHashing")
        .def(py::init<int, int>(), py::arg("nbits"), py::arg("m") = 0)
        .def(
            "add",
            [check_width](MultiIndexHashing& self, const CodesIn& db, int threads) {
              Codes dv = codes_view(db, "database");
              check_width(self, dv, "database");
              py::gil_scoped_release release;
              self.add(dv.data, dv.n, threads);
            },
            py::arg("database"), py::arg("threads") = 0)
        .def("reset", [](MultiIndexHashing& self) {
          py::gil_scoped_release release;
          self.reset();
        })
        .def_property_readonly("nbits", &MultiIndexHashing::nbits)
        .def_property_readonly("m", &MultiIndexHashing::m)
        .def_property_readonly("ntotal", &MultiIndexHashing::ntotal)
        .def_property_readonly("segment_sizes", &MultiIndexHashing::segment_sizes)
        .def_property_readonly("segment_substrings", &MultiIndexHashing::segment_substrings)
        .def_property_readonly("memory_bytes", &MultiIndexHashing::memory_bytes)
        .def(
            "range_search",
            [check_width, stats_dict](const MultiIndexHashing& self, const CodesIn& q, const CodesIn& db, int radius,
                                      int threads, std::size_t k, const std::string& method) {
              Codes qv = codes_view(q, "queries"), dv = codes_view(db, "database");
              check_width(self, qv, "queries");
              check_width(self, dv, "database");
              const SearchMethod how = parse_method(method);
              MihStats st;
              RangeResultData r;
              {
                py::gil_scoped_release release;
                r = self.search(qv.data, qv.n, dv.data, dv.n, k, radius, threads, how, &st);
              }
              return py::make_tuple(range_to_python(std::move(r)), stats_dict(st));
            },
            py::arg("queries"), py::arg("database"), py::arg("radius"), py::arg("threads") = 0, py::arg("k") = 0,
            py::arg("method") = "auto")
        .def(
            "knn",
            [check_width, stats_dict](const MultiIndexHashing& self, const CodesIn& q, const CodesIn& db,
                                      std::size_t k, int threads, const std::string& method) {
              Codes qv = codes_view(q, "queries"), dv = codes_view(db, "database");
              check_width(self, qv, "queries");
              check_width(self, dv, "database");
              const SearchMethod how = parse_method(method);
              py::array_t<dist_t> D({static_cast<py::ssize_t>(qv.n), static_cast<py::ssize_t>(k)});
              py::array_t<idx_t> I({static_cast<py::ssize_t>(qv.n), static_cast<py::ssize_t>(k)});
              dist_t* d = D.mutable_data();
              idx_t* ix = I.mutable_data();
              MihStats st;
              {
                py::gil_scoped_release release;
                self.knn(qv.data, qv.n, dv.data, dv.n, k, d, ix, threads, how, &st);
              }
              return py::make_tuple(D, I, stats_dict(st));
            },
            py::arg("queries"), py::arg("database"), py::arg("k"), py::arg("threads") = 0, py::arg("method") = "auto");
    m.def("mih_auto_substrings", &auto_substrings, py::arg("nbits"), py::arg("n"));
    m.def(
        "mih_split_substrings",
        [](int nbits, int m_) {
          std::vector<std::pair<int, int>> out;
          for (Substring s : split_substrings(nbits, m_)) out.emplace_back(s.start, s.len);
          return out;
        },
        py::arg("nbits"), py::arg("m"));
  }

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

  // CPU model of the GPU pairwise loss (pairwise_tiles.hpp run block by block): the CPU tests check it.
  // Returns (loss, i_groups, j_groups); grad_a / grad_b (None skips) are written.
  {
    auto bind_model = [&m](auto tag) {
      using T = decltype(tag);
      using ArrayT = typename PairwiseCall<T>::ArrayT;
      using LabelsT = typename PairwiseCall<T>::LabelsT;
      m.def(
          "_pairwise_tiles_model",
          [](const ArrayT& a, const ArrayT& b, const LabelsT& la, const LabelsT& lb, double scale,
             double similarity_scale, double similar_weight, double dissimilar_weight, const std::string& variant,
             bool mean, const py::object& grad_a, const py::object& grad_b, std::size_t target_blocks,
             std::size_t slot_budget) {
            PairwiseCall<T> c(a, b, la, lb, scale, similarity_scale, similar_weight, dissimilar_weight, variant,
                              mean, grad_a, grad_b);
            PairwiseTilesModelResult r;
            {
              py::gil_scoped_release release;
              r = pairwise_tiles_model<T>(c.a, c.n, c.b, c.N, c.d, c.labels_a, c.labels_b, c.label_bytes, c.opt,
                                          c.grad_a, c.grad_b, target_blocks, slot_budget);
            }
            return py::make_tuple(r.loss, r.i_groups, r.j_groups);
          },
          py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("labels_a").noconvert(),
          py::arg("labels_b").noconvert(), py::arg("scale"), py::arg("similarity_scale"), py::arg("similar_weight"),
          py::arg("dissimilar_weight"), py::arg("variant"), py::arg("mean"), py::arg("grad_a"), py::arg("grad_b"),
          py::arg("target_blocks") = pairwise_tiles::kTargetBlocks,
          py::arg("slot_budget") = pairwise_tiles::kSlotBudgetBytes);
    };
    bind_model(float{});
    bind_model(double{});
  }
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

  m.def(
      "cuda_pairwise_workspace",
      [=](std::size_t n, std::size_t N, std::size_t d, std::size_t element_bytes, bool want_grad_a,
          bool want_grad_b) {
        std::size_t bytes = 0;
        check(xmhash_cuda_pairwise_workspace(n, N, d, element_bytes, want_grad_a, want_grad_b, &bytes),
              "xmhash_cuda_pairwise_workspace");
        return bytes;
      },
      py::arg("n"), py::arg("N"), py::arg("d"), py::arg("element_bytes"), py::arg("want_grad_a"),
      py::arg("want_grad_b"));

  // The fused pairwise loss: a, b (float32 or float64 as `dtype` says), label rows, outputs (loss: one element;
  // grad_a / grad_b: 0 skips them) and workspace as device addresses; python/xmhash/nn/pairwise.py validates.
  m.def(
      "cuda_pairwise_loss",
      [=](uptr a, uptr b, uptr labels_a, uptr labels_b, std::size_t n, std::size_t N, std::size_t d,
          std::size_t label_bytes, const std::string& dtype, double scale, double similarity_scale,
          double similar_weight, double dissimilar_weight, const std::string& variant, bool mean, uptr loss,
          uptr grad_a, uptr grad_b, uptr ws, std::size_t ws_bytes, int device, uptr stream) {
        if (dtype != "float32" && dtype != "float64")
          throw std::invalid_argument("dtype must be 'float32' or 'float64', got '" + dtype + "'");
        const PairwiseOptions opt =
            pairwise_options(scale, similarity_scale, similar_weight, dissimilar_weight, variant, mean);
        py::gil_scoped_release release;
        auto call = [&](auto* typed) {
          using T = std::remove_pointer_t<decltype(typed)>;
          auto p = [](uptr x) { return reinterpret_cast<T*>(x); };
          if constexpr (std::is_same_v<T, float>)
            return xmhash_cuda_pairwise_loss_f32(p(a), n, p(b), N, d, u8(labels_a), u8(labels_b), label_bytes, &opt,
                                                 p(loss), p(grad_a), p(grad_b), reinterpret_cast<void*>(ws), ws_bytes,
                                                 device, stream_of(stream));
          else
            return xmhash_cuda_pairwise_loss_f64(p(a), n, p(b), N, d, u8(labels_a), u8(labels_b), label_bytes, &opt,
                                                 p(loss), p(grad_a), p(grad_b), reinterpret_cast<void*>(ws), ws_bytes,
                                                 device, stream_of(stream));
        };
        check(dtype == "float32" ? call(static_cast<float*>(nullptr)) : call(static_cast<double*>(nullptr)),
              "xmhash_cuda_pairwise_loss");
      },
      py::arg("a"), py::arg("b"), py::arg("labels_a"), py::arg("labels_b"), py::arg("n"), py::arg("N"), py::arg("d"),
      py::arg("label_bytes"), py::arg("dtype"), py::arg("scale"), py::arg("similarity_scale"),
      py::arg("similar_weight"), py::arg("dissimilar_weight"), py::arg("variant"), py::arg("mean"), py::arg("loss"),
      py::arg("grad_a"), py::arg("grad_b"), py::arg("workspace"), py::arg("workspace_bytes"), py::arg("device"),
      py::arg("stream"));
#endif
}
